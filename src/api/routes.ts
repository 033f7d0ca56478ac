import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../observability/metrics.js';
import { recallInputSchema, type Recall } from '../memory/recall.js';
import type { Producer } from '../queue/enqueue.js';
import { threadIdSchema } from '../core/names.js';
import { enqueueBodySchema } from '../queue/schemas.js';
import { searchModeSchema } from '../store/schemas.js';
import { untilGone } from './abandonable.js';
import { queryBool, queryInt, queryNamespace } from './query-params.js';
import { refusal, refusals } from './route-schema.js';
import { enqueueResponse, memoriesResponse, recallResponse } from './schemas.js';
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
  // Checked by the search schema; the document lists what it takes.
  mode: z.string().meta({ enum: searchModeSchema.options }).optional(),
  asOf: z.string().meta({ format: 'date-time' }).optional(),
  refreshTtl: queryBool.optional(),
  consistency: z.string().optional(),
});

export function registerRoutes(app: FastifyInstance, deps: ApiDeps) {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    '/v1/threads/:threadId/turns',
    {
      schema: {
        summary: 'Buffer turns of a thread and schedule its reflection',
        tags: ['turns'],
        params: threadParams,
        body: enqueueBodySchema,
        response: {
          202: enqueueResponse.describe('buffered; `duplicates` counts messages whose id was buffered already'),
          ...refusals(400, 503),
          409: refusal("the thread's pending turns carry another context"),
        },
      },
    },
    async (request, reply) => {
      const { threadId } = request.params;
      const body = request.body;
      // Validated by the enqueue schemas themselves (the route's), so the producer skips its own parse.
      const context = deps.tenancy.stampContext(request, body.context);
      const result = await deps.producer.enqueueParsed({
        ...body,
        context,
        threadId: deps.tenancy.threadKey(request, threadId, context),
      });
      deps.metrics.turnsEnqueued.inc({ result: 'accepted' }, result.accepted);
      if (result.duplicates) deps.metrics.turnsEnqueued.inc({ result: 'duplicate' }, result.duplicates);
      return reply.status(202).send({ ...result, threadId });
    },
  );

  api.get(
    '/v1/memories/search',
    {
      schema: {
        summary: "One namespace's memories, most similar to the query first",
        tags: ['memories'],
        querystring: searchQuery,
        response: { 200: memoriesResponse.describe('the memories, best first'), ...refusals(400, 413, 503) },
      },
    },
    async (request, reply) => {
      const q = deps.tenancy.confine(request, request.query, { required: ['namespace'] });
      const read = (signal: AbortSignal) =>
        deps.recall.search(
          {
            namespace: q.namespace,
            query: q.query,
            limit: q.limit,
            offset: q.offset,
            // Checked by the search schema, which names the modes.
            mode: q.mode as 'vector' | 'text' | 'hybrid' | undefined,
            asOf: q.asOf,
            refreshTtl: q.refreshTtl,
            consistency: q.consistency as 'replica' | 'primary' | undefined,
          },
          { signal },
        );
      return { memories: await untilGone(reply, read) };
    },
  );

  api.post(
    '/v1/recall',
    {
      schema: {
        summary: 'Profiles and memories for the next prompt, with a prompt block',
        tags: ['memories'],
        body: recallInputSchema,
        response: { 200: recallResponse.describe('what to put in the next prompt'), ...refusals(400, 413, 503) },
      },
    },
    async (request, reply) => {
      // The context fills the kinds' namespaces: under an API key it carries the key's tenant,
      // which every namespace template starts with, so a recall stays inside its tenant.
      const context = deps.tenancy.stampContext(request, request.body.context);
      return untilGone(reply, (signal) => deps.recall.recallParsed({ ...request.body, context }, { signal }));
    },
  );
}
