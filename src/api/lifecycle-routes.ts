import type { FastifyInstance } from 'fastify';
import { eraseInputSchema, type Eraser } from '../memory/erase.js';
import { parse } from './parse.js';
import type { Tenancy } from './tenancy.js';

export interface LifecycleDeps {
  eraser: Eraser;
  tenancy: Tenancy;
}

/** The data lifecycle: erase (and, beside it, export, import and revert). */
export function registerLifecycleRoutes(app: FastifyInstance, deps: LifecycleDeps) {
  app.post('/v1/erase', async (request) => {
    const body = parse(eraseInputSchema, request.body, 'request body');
    // Under an API key a context carries the key's tenant (every namespace template starts with
    // it, and the threads are matched on it), and a prefix must start with it.
    const input =
      'context' in body
        ? { context: deps.tenancy.stampContext(request, body.context) }
        : deps.tenancy.confine(request, body, { required: ['namespacePrefix'] });
    return deps.eraser.eraseParsed(input, request.tenant ? `api:${request.tenant}` : 'api');
  });
}
