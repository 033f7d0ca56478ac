import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Metrics } from '../observability/metrics.js';
import { recallInputSchema, type Recall } from '../memory/recall.js';
import type { Producer } from '../queue/enqueue.js';
import { threadIdSchema } from '../core/names.js';
import { enqueueBodySchema } from '../queue/schemas.js';
import { parse } from './parse.js';
import { queryBool, queryInt, queryNamespace } from './query-params.js';
import type { Tenancy } from './tenancy.js';

export interface ApiDeps {
  producer: Producer;
  metrics: Metrics;
  recall: Recall;
  tenancy: Tenancy;
}

const threadParams = z.strictObject({ threadId: threadIdSchema });
/** `?namespace=a&namespace=b` (repeat for each label) or a single label. */
const searchQuery = z.strictObject({
  namespace: queryNamespace,
  query: z.string(),
  limit: queryInt.optional(),
  offset: queryInt.optional(),
  mode: z.string().optional(),
  asOf: z.string().optional(),
  refreshTtl: queryBool.optional(),
  consistency: z.string().optional(),
});

export function registerRoutes(app: FastifyInstance, deps: ApiDeps) {
  app.post('/v1/threads/:threadId/turns', async (request, reply) => {
    const { threadId } = parse(threadParams, request.params, 'path');
    const body = parse(enqueueBodySchema, request.body, 'request body');
    // Validated above with the enqueue schemas themselves, so the producer skips its own parse.
    const context = deps.tenancy.stampContext(request, body.context);
    const result = await deps.producer.enqueueParsed({
      ...body,
      context,
      threadId: deps.tenancy.threadKey(request, threadId, context),
    });
    deps.metrics.turnsEnqueued.inc({ result: 'accepted' }, result.accepted);
    if (result.duplicates) deps.metrics.turnsEnqueued.inc({ result: 'duplicate' }, result.duplicates);
    return reply.status(202).send({ ...result, threadId });
  });

  app.get('/v1/memories/search', async (request) => {
    const q = deps.tenancy.confine(request, parse(searchQuery, request.query, 'query string'), {
      required: ['namespace'],
    });
    const memories = await deps.recall.search({
      namespace: q.namespace,
      query: q.query,
      limit: q.limit,
      offset: q.offset,
      // Checked by the search schema, which names the modes.
      mode: q.mode as 'vector' | 'text' | 'hybrid' | undefined,
      asOf: q.asOf,
      refreshTtl: q.refreshTtl,
      consistency: q.consistency as 'replica' | 'primary' | undefined,
    });
    return { memories };
  });

  app.post('/v1/recall', async (request) => {
    const input = parse(recallInputSchema, request.body, 'request body');
    // The context fills the kinds' namespaces: under an API key it carries the key's tenant,
    // which every namespace template starts with, so a recall stays inside its tenant.
    const context = deps.tenancy.stampContext(request, input.context);
    return deps.recall.recallParsed({ ...input, context });
  });
}
