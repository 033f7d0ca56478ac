import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { namespaceSchema } from '../core/names.js';
import { InputError } from '../errors.js';
import { namespacesOfContext } from '../memory/context-namespaces.js';
import { eraseInputSchema, type Eraser } from '../memory/erase.js';
import type { RecallKind } from '../memory/recall.js';
import { contextSchema } from '../queue/schemas.js';
import { revertChangesInputSchema, revertItemInputSchema, sharedUndoScopeSchema } from '../store/schemas.js';
import type { StoreService } from '../store/store-service.js';
import { bodyText } from './json-body.js';
import { jsonText } from './json-text.js';
import { parse } from './parse.js';
import { queryBool, queryNamespace } from './query-params.js';
import { bodyCheckedByService, refusal, refusals } from './route-schema.js';
import { eraseResponse, importResponse, itemResponse, revertChangesResponse } from './schemas.js';
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
  context: z.string().max(10_000).optional().describe('JSON, such as {"userId":"u1"}'),
  history: queryBool.optional(),
});
/** An import file may be far larger than a JSON body: up to this, read whole and checked first. */
const IMPORT_MAX_BYTES = 64 * 1024 * 1024;
const tags = ['lifecycle'];
const stale = refusal('a later change touched an item (or `ifVersion` is stale); nothing was written');

/** The data lifecycle: erase, export, import and revert. */
export function registerLifecycleRoutes(app: FastifyInstance, deps: LifecycleDeps) {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const { store, tenancy } = deps;

  api.post(
    '/v1/store/items/revert',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'Put an item back as it was at a version of its history (a new version)',
        tags,
        body: revertItemInputSchema,
        response: { 200: itemResponse.describe('the item as stored now'), ...refusals(400, 503), 409: stale },
      },
    },
    async (request) => ({
      item: await store.revert(tenancy.confineWrite(request, request.body as unknown, { required: ['namespace'] })),
    }),
  );

  // Under an API key the prefix defaults to (and must start with) the key's tenant: a tenant
  // undoes a job's changes to its own namespaces only.
  api.post(
    '/v1/revert',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'Undo everything one actor (a reflection or consolidation job) changed',
        tags,
        body: revertChangesInputSchema,
        response: { 200: revertChangesResponse, ...refusals(400, 413, 503), 409: stale },
      },
    },
    async (request) => {
      const sent = request.body as unknown;
      // A shared actor's undo names its prefix as sent: confined, a tenant's absent one is the tenant's root.
      if (sent && typeof sent === 'object') parse(sharedUndoScopeSchema, sent, 'revert request');
      return store.revertChanges(tenancy.confineWrite(request, sent, { defaulted: ['namespacePrefix'] }));
    },
  );

  api.post(
    '/v1/erase',
    {
      schema: {
        summary: "Erase a user's (a context's) or a namespace prefix's memories, history, buffered turns and jobs",
        tags,
        body: eraseInputSchema,
        response: { 200: eraseResponse, ...refusals(400, 503) },
      },
    },
    async (request) => {
      const body = request.body;
      // Under an API key a context carries the key's tenant (every namespace template starts with
      // it, and the threads are matched on it), and a prefix must start with it.
      const input =
        'context' in body
          ? { context: tenancy.stampContext(request, body.context) }
          : tenancy.confine(request, body, { required: ['namespacePrefix'] });
      return deps.eraser.eraseParsed(input, request.tenant ? `api:${request.tenant}` : 'api');
    },
  );

  api.get(
    '/v1/export',
    {
      schema: {
        summary: 'Export items (and their history) as NDJSON: a header line, then an item per line',
        tags,
        querystring: exportQuery,
        produces: ['application/x-ndjson'],
        response: { 200: z.string().describe('NDJSON (application/x-ndjson)'), ...refusals(400, 503) },
      },
    },
    async (request, reply) => {
      const lines = store.exportLines(scopeOf(request.query, request, deps))[Symbol.asyncIterator]();
      // The header and the first page before the answer starts: a store out of reach is then a
      // 503, not a stream cut after its 200.
      const first = [await lines.next(), await lines.next()].flatMap((r) => (r.done ? [] : [r.value]));
      const body = (async function* () {
        for (const line of first) yield `${line}\n`;
        for (let r = await lines.next(); !r.done; r = await lines.next()) yield `${r.value}\n`;
      })();
      // A stream is sent as it is (Fastify serializes no stream); the document says what it holds.
      // Fastify pipes it, so the socket's backpressure reaches the generator: one line is read
      // ahead, not the 16 of an object stream's default (16 lines of a megabyte each).
      return reply.type('application/x-ndjson').send(Readable.from(body, { highWaterMark: 1 }) as unknown as string);
    },
  );

  // NDJSON, in its own scope: the parser applies to this route only. JSON's parser is removed
  // here, so that a JSON body is a 415 naming the type to send (errors.ts reads `consumes`),
  // not a 400 after parsing it.
  void app.register(async (scope) => {
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/x-ndjson', { parseAs: 'buffer' }, (request, bytes, done) => {
      try {
        done(null, bodyText(request, bytes as Buffer));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
    scope.withTypeProvider<ZodTypeProvider>().post(
      '/v1/import',
      {
        ...bodyCheckedByService,
        // The route's own limit, not only its parser's: a 413 names the route's limit
        // (json-body.ts), which was then the API's 4 MiB, not the 64 MiB an import may send.
        bodyLimit: IMPORT_MAX_BYTES,
        schema: {
          summary: 'Import an export file into empty namespaces, with its versions and history',
          tags,
          consumes: ['application/x-ndjson'],
          body: z.string().describe('an export file (application/x-ndjson), at most 64 MiB'),
          response: {
            200: importResponse,
            ...refusals(400, 413, 415, 503),
            409: refusal('a key of the file exists here already; batches before it were imported'),
          },
        },
      },
      async (request) => {
        if (typeof request.body !== 'string')
          throw new InputError('the body must be an export file (content-type: application/x-ndjson)');
        // Under an API key every line's namespace must start with the key's tenant, and its
        // history's actors and threads are the tenant's.
        const tenant = request.tenant && request.tenant !== ALL_TENANTS ? request.tenant : undefined;
        return store.import(request.body.split('\n'), tenant);
      },
    );
  });
}

/** What an export covers: a prefix (confined to the key's tenant), or a context's namespaces. */
function scopeOf(
  q: z.output<typeof exportQuery>,
  request: Parameters<Tenancy['stampContext']>[0],
  deps: LifecycleDeps,
): { prefixes: string[][]; history: boolean; scope: Record<string, unknown> } {
  const history = q.history ?? false;
  if ((q.namespace === undefined) === (q.context === undefined))
    throw new InputError('give either `namespace` (a prefix, one label per parameter) or `context` (JSON)');
  if (q.context !== undefined) {
    const context = deps.tenancy.stampContext(
      request,
      parse(contextSchema, parse(jsonText('context'), q.context, 'query string'), 'context'),
    );
    return { ...namespacesOfContext(deps.kinds(), context), history, scope: { context } };
  }
  const { namespace } = deps.tenancy.confine(
    request,
    parse(z.object({ namespace: namespaceSchema }), { namespace: q.namespace }, 'namespace'),
    {
      required: ['namespace'],
    },
  );
  return { prefixes: [namespace], history, scope: { namespacePrefix: namespace } };
}
