import { SpanStatusCode } from '@opentelemetry/api';
import type { Logger } from '../observability/logger.js';
import { jobSpanContext, tracer } from '../observability/tracing.js';
import type { Producer } from '../queue/enqueue.js';
import type { EngramQueue } from '../queue/queues.js';
import type { ThreadBuffers } from '../queue/thread-buffers.js';
import type { ChangeResult, ChangeSet } from '../store/change-set.js';

/**
 * The producer, with each enqueue in an `engram.enqueue` span. The thread's job is added inside
 * it, so BullMQ's telemetry carries the span's context in the job's options to every run of the
 * job (its debounce re-delays included) and the model calls and commit under them. A turn that
 * joins a thread's existing job adds no job: its span gets a link to the job's trace instead,
 * read after the reply (two Redis reads, only with tracing on), so the turn is not lost from it.
 */
export function tracedProducer(
  producer: Producer,
  buffers: ThreadBuffers,
  queues: EngramQueue<'reflection'>[],
  log: Logger,
): { producer: Producer; settle: () => Promise<void> } {
  // Links still being read, so that a stop waits for their spans to end (and be exported).
  const linking = new Set<Promise<void>>();
  const wrap =
    (call: (input: never) => Promise<{ threadId: string; accepted: number; duplicates: number }>) =>
    (input: { threadId?: unknown }) =>
      tracer().startActiveSpan('engram.enqueue', async (span) => {
        try {
          const result = await call(input as never);
          span.setAttributes({
            'engram.thread.id': result.threadId,
            'engram.turns.accepted': result.accepted,
            'engram.turns.duplicates': result.duplicates,
          });
          const threadKey = typeof input.threadId === 'string' ? input.threadId : result.threadId;
          const queue = queues[buffers.shardOf(threadKey)] as EngramQueue<'reflection'>;
          const link = linkToJob(span, queue, threadKey)
            .catch((err: unknown) => log.debug({ err }, 'could not link the enqueue span to its job'))
            .finally(() => {
              span.end();
              linking.delete(link);
            });
          linking.add(link);
          return result;
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
          throw err;
        }
      });
  const enqueue = wrap((input) => producer.enqueue(input));
  const enqueueParsed = wrap((input) => producer.enqueueParsed(input));
  const traced = new Proxy(producer, {
    get(target, key) {
      if (key === 'enqueue') return enqueue;
      if (key === 'enqueueParsed') return enqueueParsed;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { producer: traced, settle: async () => void (await Promise.all(linking)) };
}

async function linkToJob(span: import('@opentelemetry/api').Span, queue: EngramQueue<'reflection'>, threadKey: string) {
  const jobId = await queue.getDeduplicationJobId(threadKey);
  const job = jobId ? await queue.getJob(jobId) : undefined;
  const context = jobSpanContext(job?.opts.telemetry?.metadata);
  if (context && context.traceId !== span.spanContext().traceId) {
    span.addLink({ context, attributes: { 'engram.link': 'joined-thread-job', 'engram.job.id': job?.id ?? '' } });
  }
}

/** What a commit span says: what the change did, and the memories it wrote. */
export function describeChange(result: unknown, [change]: unknown[]): Record<string, string | number | string[]> {
  const r = result as ChangeResult;
  const c = change as ChangeSet;
  const attributes: Record<string, string | number | string[]> = {
    'engram.change.status': r.status,
    'engram.change.actor': c.actor,
    'engram.memory.keys': c.writes.map((w) => `${w.namespace.join('/')}/${w.key}`),
  };
  if (c.threadId) attributes['engram.thread.id'] = c.threadId;
  if (r.status === 'applied') {
    for (const [op, n] of Object.entries(r.counts)) attributes[`engram.memory.${op}`] = n;
  }
  return attributes;
}
