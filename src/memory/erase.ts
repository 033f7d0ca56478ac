import type { RedisClient } from '../queue/connection.js';
import { z } from 'zod';
import { namespaceSchema } from '../core/names.js';
import { InputError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { EngramQueue } from '../queue/queues.js';
import { contextSchema } from '../queue/schemas.js';
import { eraseThreads, threadsOfContext } from '../queue/thread-erase.js';
import type { ThreadBuffers } from '../queue/thread-buffers.js';
import type { EraseCounts } from '../store/erase.js';
import type { MemoryDb } from '../store/memory-db.js';
import { namespacesOfContext } from './context-namespaces.js';
import type { RecallKind } from './recall.js';

/**
 * What to erase: a context (such as `{ userId }`): every namespace the kinds fill from it, and
 * the threads whose turns came with it; or a namespace prefix (whole labels, at least one): its
 * namespaces only, no threads.
 */
const byScope = {
  context: z.strictObject({ context: contextSchema }),
  namespacePrefix: z.strictObject({ namespacePrefix: namespaceSchema }),
};
export const eraseInputSchema = z.union([byScope.context, byScope.namespacePrefix], {
  // A union alone says "invalid input": say which of the two to give when it is neither or both.
  error: (issue) => {
    const input = issue.input;
    if (typeof input !== 'object' || input === null) return undefined;
    const given = (['context', 'namespacePrefix'] as const).filter((k) => k in input);
    if (given.length === 0)
      return 'give `context` (such as {"userId":"u1"}) or `namespacePrefix` (labels): what to erase';
    if (given.length === 2) return 'give `context` or `namespacePrefix`, not both: one scope a call';
    // The scope given: what is wrong with it.
    const problem = byScope[given[0] as keyof typeof byScope].safeParse(input).error?.issues[0];
    return problem && `${problem.message} (at ${problem.path.join('.')})`;
  },
});
export type EraseInput = z.input<typeof eraseInputSchema>;
export type EraseParsed = z.output<typeof eraseInputSchema>;

export interface EraseResult extends EraseCounts {
  /** Reflection jobs removed (waiting, delayed, failed, completed). */
  jobs: number;
  /** The namespace prefixes erased. */
  prefixes: string[][];
}

/**
 * Right to erasure (invariant 10): after an erase, no table row and no Redis key under the
 * prefix holds the erased memories or the erased threads' turns, and no reflection in flight
 * writes them back. Redis first, then the store: a reflection that starts after the Redis half
 * finds no turns; one that read its turns before commits either before the store's half (which
 * then deletes what it wrote) or after (refused by the thread's erase epoch).
 */
export class Eraser {
  constructor(
    private readonly deps: {
      store: MemoryDb;
      redis: RedisClient;
      /** Every shard's buffer, and its reflection queue (shard n's at index n). */
      buffers: ThreadBuffers;
      queues: EngramQueue<'reflection'>[];
      kinds: () => readonly RecallKind[];
      log: Logger;
    },
  ) {}

  async erase(input: EraseInput, actor: string): Promise<EraseResult> {
    const parsed = eraseInputSchema.safeParse(input);
    if (!parsed.success)
      throw new InputError(`invalid erase request: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
    return this.eraseParsed(parsed.data, actor);
  }

  /** For callers that validated with the same schema already (the HTTP route, with tenancy). */
  async eraseParsed(input: EraseParsed, actor: string): Promise<EraseResult> {
    const { store, redis, buffers, queues, log } = this.deps;
    const { prefixes, namespaces } =
      'context' in input
        ? namespacesOfContext(this.deps.kinds(), input.context)
        : { prefixes: [input.namespacePrefix], namespaces: [] };
    const threads = 'context' in input ? await threadsOfContext(redis, buffers, input.context) : [];
    const { jobs } = await eraseThreads(redis, buffers, queues, threads);
    const scope = 'context' in input ? { context: input.context } : { namespacePrefix: input.namespacePrefix };
    const counts = await store.erase({ prefixes, namespaces, threads, actor, scope });
    // Identifiers and counts only: the log, like the audit row, keeps no erased text.
    log.info({ actor, scope, ...counts, jobs }, 'erased');
    return { ...counts, jobs, prefixes: [...prefixes, ...namespaces] };
  }
}
