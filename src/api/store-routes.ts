import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { BATCH_MAX_OPS } from '../store/schemas.js';
import type { StoreService } from '../store/store-service.js';
import { parse } from './parse.js';
import { queryBool, queryInt, queryNamespace } from './query-params.js';
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

/**
 * The store API over HTTP. Bodies are the SDK's input objects as JSON, validated by the same
 * schemas inside Store; bad input is a 400, a stale `ifVersion` a 409.
 */
export function registerStoreRoutes(app: FastifyInstance, store: StoreService, tenancy: Tenancy) {
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
  app.put('/v1/store/items', async (request) => ({
    item: await store.put(tenancy.confineWrite(request, request.body, one)),
  }));

  app.get('/v1/store/items', async (request, reply) => {
    const item = await store.get(tenancy.confine(request, parse(getQuery, request.query, 'query string'), one));
    return item ? { item } : reply.status(404).send({ error: 'no such item (or it expired)' });
  });

  app.delete('/v1/store/items', async (request) => ({
    deleted: await store.delete(tenancy.confineWrite(request, request.body, one)),
  }));

  app.post('/v1/store/items/search', async (request) => ({
    items: await store.search(tenancy.confine(request, request.body, searched)),
  }));

  app.get('/v1/store/items/history', async (request) => ({
    history: await store.history(tenancy.confine(request, parse(historyQuery, request.query, 'query string'), one)),
  }));

  app.post('/v1/store/namespaces', async (request) => ({
    // No body lists every namespace; a body of JSON `null` is no object, and is refused as one.
    namespaces: await store.listNamespaces(
      tenancy.confine(request, request.body === undefined ? {} : request.body, listed),
    ),
  }));

  app.post('/v1/store/batch', async (request) => {
    // Its shape and size first, as every other route's: the ops themselves are the store's to check.
    const { ops } = parse(batchBody, request.body, 'batch request');
    const confined = ops.map((op) => {
      const fields = readFields.get((op as { op?: unknown } | null)?.op);
      return fields ? tenancy.confine(request, op, fields) : tenancy.confineWrite(request, op, one);
    });
    return { results: await store.batch(confined) };
  });
}
