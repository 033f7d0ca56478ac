import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LimitError } from '../errors.js';
import {
  BATCH_MAX_OPS,
  batchInputSchema,
  deleteInputSchema,
  listNamespacesInputSchema,
  putInputSchema,
  searchInputSchema,
} from '../store/schemas.js';
import type { StoreService } from '../store/store-service.js';
import { abandonable, CLIENT_GONE, untilGone } from './abandonable.js';
import { parse } from './parse.js';
import { queryBool, queryInt, queryNamespace } from './query-params.js';
import { bodyCheckedByService, OPTIONAL_BODY, refusal, refusals } from './route-schema.js';
import {
  batchResponse,
  deletedResponse,
  historyResponse,
  itemResponse,
  itemsResponse,
  namespacesResponse,
} from './schemas.js';
import type { NamespaceFields, Tenancy } from './tenancy.js';

/** `?namespace=a&namespace=b&key=k`. */
const itemQuery = z.strictObject({
  namespace: queryNamespace,
  key: z.string(),
});
/** `consistency` is checked by the store's schema, which names the values. */
const getQuery = itemQuery.extend({ refreshTtl: queryBool.optional(), consistency: z.string().optional() });
/** `{ ops: [...] }` and nothing else; each op is checked by the store's batch schema. */
const batchBody = z.strictObject({ ops: z.array(z.unknown()).max(BATCH_MAX_OPS) });
/** Numbers arrive as text; the store's schema checks their bounds. */
const historyQuery = itemQuery.extend({
  limit: queryInt.optional(),
  offset: queryInt.optional(),
  consistency: z.string().optional(),
});

const tags = ['store'];

/**
 * The store API over HTTP. Bodies are the SDK's input objects as JSON: tenancy confines them,
 * then the same schemas inside Store validate them (bad input is a 400, a stale `ifVersion` a
 * 409); the routes declare those schemas for the document (bodyCheckedByService).
 */
export function registerStoreRoutes(
  app: FastifyInstance,
  store: StoreService,
  tenancy: Tenancy,
  /** HTTP_REQUEST_TIMEOUT_MS: a batch's deadline too. */
  limits: { requestTimeoutMs: number },
) {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const one: NamespaceFields = { required: ['namespace'] };
  const searched: NamespaceFields = { defaulted: ['namespacePrefix'] };
  const listed: NamespaceFields = { defaulted: ['prefix'] };
  // The namespace fields of each read op of a batch; every other op is a write (put, delete).
  // A Map: an op named "constructor" must not find Object's.
  const readFields = new Map<unknown, NamespaceFields>([
    ['get', one],
    ['search', searched],
    ['listNamespaces', listed],
  ]);
  const stale = refusal('`ifVersion` is not the current version; nothing was written');

  api.put(
    '/v1/store/items',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'Put an item (insert or replace its value)',
        tags,
        body: putInputSchema,
        response: { 200: itemResponse.describe('the item as stored'), ...refusals(400, 413, 503), 409: stale },
      },
    },
    async (request) => ({
      item: await store.put(tenancy.confineWrite(request, request.body as unknown, one)),
    }),
  );

  api.get(
    '/v1/store/items',
    {
      schema: {
        summary: 'Get an item',
        tags,
        querystring: getQuery,
        response: {
          200: itemResponse.describe('the item'),
          ...refusals(400, 503),
          404: refusal('no such item (or it expired)'),
        },
      },
    },
    (request, reply) =>
      untilGone(reply, async (signal) => {
        const item = await store.get(tenancy.confine(request, request.query, one), { signal });
        return item ? { item } : reply.status(404).send({ error: 'no such item (or it expired)' });
      }),
  );

  api.delete(
    '/v1/store/items',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'Delete an item',
        tags,
        body: deleteInputSchema,
        response: {
          200: deletedResponse.describe('whether a live item was deleted'),
          ...refusals(400, 413, 503),
          409: stale,
        },
      },
    },
    async (request) => ({
      deleted: await store.delete(tenancy.confineWrite(request, request.body as unknown, one)),
    }),
  );

  api.post(
    '/v1/store/items/search',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'Search items under a namespace prefix: by query, filter, or newest first',
        tags,
        body: searchInputSchema,
        response: {
          200: itemsResponse.describe('the hits, best first (newest first without a query)'),
          ...refusals(400, 413, 503),
        },
      },
    },
    (request, reply) =>
      untilGone(reply, async (signal) => ({
        items: await store.search(tenancy.confine(request, request.body as unknown, searched), { signal }),
      })),
  );

  api.get(
    '/v1/store/items/history',
    {
      schema: {
        summary: "An item's change log, oldest first, a page at a time",
        tags,
        querystring: historyQuery,
        response: {
          200: historyResponse.describe('one page of the change log'),
          ...refusals(400, 503),
          413: refusal('the page would pass STORE_ANSWER_MAX_BYTES of stored JSON: ask for a smaller `limit`'),
        },
      },
    },
    (request, reply) =>
      untilGone(reply, async (signal) => ({
        history: await store.history(tenancy.confine(request, request.query, one), { signal }),
      })),
  );

  api.post(
    '/v1/store/namespaces',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'List namespaces (no body: all of them)',
        tags,
        [OPTIONAL_BODY]: true,
        body: listNamespacesInputSchema.optional(),
        response: { 200: namespacesResponse.describe('the namespaces'), ...refusals(400, 413, 503) },
      },
    },
    (request, reply) =>
      untilGone(reply, async (signal) => {
        const body = request.body as unknown;
        // No body lists every namespace; a body of JSON `null` is no object, and is refused as one.
        const query = tenancy.confine(request, body === undefined ? {} : body, listed);
        return { namespaces: await store.listNamespaces(query, { signal }) };
      }),
  );

  api.post(
    '/v1/store/batch',
    {
      ...bodyCheckedByService,
      schema: {
        summary: 'Several operations: the writes first, all or nothing, then the reads',
        tags,
        body: batchInputSchema,
        response: {
          200: batchResponse.describe('one result per op, in order'),
          ...refusals(400, 413, 503),
          409: refusal('an `ifVersion` of the batch is not the current version; nothing was written'),
        },
      },
    },
    async (request, reply) => {
      // Its shape and size first, as every other route's: the ops themselves are the store's to check.
      const { ops } = parse(batchBody, request.body, 'batch request');
      const confined = ops.map((op) => {
        const fields = readFields.get((op as { op?: unknown } | null)?.op);
        return fields ? tenancy.confine(request, op, fields) : tenancy.confineWrite(request, op, one);
      });
      const run = abandonable(reply.raw, {
        ms: limits.requestTimeoutMs,
        error: () =>
          new LimitError(
            `the batch did not finish within ${limits.requestTimeoutMs} ms (HTTP_REQUEST_TIMEOUT_MS) and was stopped; nothing was written if it had not started writing: send fewer ops or ask for smaller searches`,
          ),
      });
      try {
        return { results: await store.batch(confined, { signal: run.signal }) };
      } catch (err) {
        // A client gone is the error handler's to log, as for every read; the deadline, here.
        if (run.signal.aborted && err === run.signal.reason && err !== CLIENT_GONE)
          request.log.info(
            { ops: confined.length, ms: Math.round(reply.elapsedTime) },
            'store batch stopped: deadline',
          );
        throw err;
      } finally {
        run.done();
      }
    },
  );
}
