import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { namespaceSchema } from '../core/names.js';
import { InputError } from '../errors.js';
import { namespacesOfContext } from '../memory/context-namespaces.js';
import type { RecallKind } from '../memory/recall.js';
import { contextSchema } from '../queue/schemas.js';
import { eraseInputSchema, type Eraser } from '../memory/erase.js';
import type { StoreService } from '../store/store-service.js';
import { parse } from './parse.js';
import { queryBool, queryNamespace } from './query-params.js';
import { ALL_TENANTS, type Tenancy } from './tenancy.js';

export interface LifecycleDeps {
  eraser: Eraser;
  store: StoreService;
  tenancy: Tenancy;
  /** The deployment's kinds: an export by context covers the namespaces they fill from it. */
  kinds: () => readonly RecallKind[];
}

/** `?namespace=a&namespace=b` (a prefix) or `?context={"userId":"u1"}`; `history=true` adds history rows. */
const exportQuery = z.strictObject({
  namespace: queryNamespace.optional(),
  context: z.string().max(10_000).optional(),
  history: queryBool.optional(),
});
/** An import file may be far larger than a JSON body: up to this, read whole and checked first. */
const IMPORT_MAX_BYTES = 64 * 1024 * 1024;

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

  app.get('/v1/export', async (request, reply) => {
    const q = parse(exportQuery, request.query, 'query string');
    if ((q.namespace === undefined) === (q.context === undefined))
      throw new InputError('give either `namespace` (a prefix, one label per parameter) or `context` (JSON)');
    let prefixes: string[][];
    let scope: Record<string, unknown>;
    if (q.context !== undefined) {
      const context = parse(contextSchema, parseJsonText(q.context), 'context');
      const stamped = tenancy.stampContext(request, context);
      prefixes = namespacesOfContext(deps.kinds(), stamped);
      scope = { context: stamped };
    } else {
      const { namespace } = tenancy.confine(
        request,
        parse(z.object({ namespace: namespaceSchema }), { namespace: q.namespace }, 'namespace'),
        {
          required: ['namespace'],
        },
      );
      prefixes = [namespace];
      scope = { namespacePrefix: namespace };
    }
    const lines = store.exportLines({ prefixes, history: q.history ?? false, scope });
    return reply.type('application/x-ndjson').send(
      Readable.from(
        (async function* () {
          for await (const line of lines) yield `${line}\n`;
        })(),
      ),
    );
  });

  // NDJSON, in its own scope: the parser and its size limit apply to this route only.
  void app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-ndjson',
      { parseAs: 'string', bodyLimit: IMPORT_MAX_BYTES },
      (_req, body, done) => done(null, body),
    );
    scope.post('/v1/import', async (request) => {
      if (typeof request.body !== 'string')
        throw new InputError('the body must be an export file (content-type: application/x-ndjson)');
      // Under an API key every line's namespace must start with the key's tenant.
      const within = request.tenant && request.tenant !== ALL_TENANTS ? [request.tenant] : undefined;
      return store.import(request.body.split('\n'), within);
    });
  });

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

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new InputError('`context` must be JSON, such as {"userId":"u1"}');
  }
}
