import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { InputError } from '../errors.js';
import type { StoreService } from '../store/store-service.js';
import { parse } from './parse.js';
import { queryBool, queryNamespace } from './query-params.js';
import type { NamespaceFields, Tenancy } from './tenancy.js';

/** `?namespace=a&namespace=b&key=k`. */
const itemQuery = z.strictObject({
  namespace: queryNamespace,
  key: z.string(),
});
const getQuery = itemQuery.extend({ refreshTtl: queryBool.optional() });
/** Numbers arrive as text; the store's schema checks their bounds. */
const historyQuery = itemQuery.extend({ limit: z.coerce.number().optional(), offset: z.coerce.number().optional() });

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
    namespaces: await store.listNamespaces(tenancy.confine(request, request.body ?? {}, listed)),
  }));

  app.post('/v1/store/batch', async (request) => {
    const ops = (request.body as { ops?: unknown } | null)?.ops;
    if (!Array.isArray(ops)) throw new InputError('invalid batch request: the body must be { "ops": [...] }');
    const confined = ops.map((op: { op?: unknown } | null) => {
      const fields = readFields.get(op?.op);
      return fields ? tenancy.confine(request, op, fields) : tenancy.confineWrite(request, op, one);
    });
    return { results: await store.batch(confined) };
  });
}
