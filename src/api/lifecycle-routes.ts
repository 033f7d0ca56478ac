import type { FastifyInstance } from 'fastify';
import { eraseInputSchema, type Eraser } from '../memory/erase.js';
import type { StoreService } from '../store/store-service.js';
import { parse } from './parse.js';
import type { Tenancy } from './tenancy.js';

export interface LifecycleDeps {
  eraser: Eraser;
  store: StoreService;
  tenancy: Tenancy;
}

/** The data lifecycle: erase, revert (and, beside them, export and import). */
export function registerLifecycleRoutes(app: FastifyInstance, deps: LifecycleDeps) {
  const { store, tenancy } = deps;
  app.post('/v1/store/items/revert', async (request) => ({
    item: await store.revert(tenancy.confineWrite(request, request.body, { required: ['namespace'] })),
  }));

  // Under an API key the prefix defaults to (and must start with) the key's tenant: a tenant
  // undoes a job's changes to its own namespaces only.
  app.post('/v1/revert', async (request) =>
    store.revertChanges(tenancy.confineWrite(request, request.body, { defaulted: ['namespacePrefix'] })),
  );

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
