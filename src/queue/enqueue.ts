import { invalidInput } from '../core/invalid-input.js';
import { InputError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { KindRoute } from '../core/kind-route.js';
import { templateVariables } from '../core/namespace-template.js';
import type { TurnToAppend } from './buffer.js';
import { Deadline } from './deadline.js';
import { rescheduleReflection, scheduleReflection, type EngramQueue } from './queues.js';
import type { ThreadBuffers } from './thread-buffers.js';
import type { ReflectionPolicy } from '../core/names.js';
import { enqueueInputSchema, type EnqueueParsed, type EnqueueResult, type Message } from './schemas.js';

export type { EnqueueResult } from './schemas.js';

export interface ProducerSettings {
  debounceMs: number;
  maxWaitMs: number;
  policy: ReflectionPolicy;
  /** The configured kinds: an enqueue must name known kinds and carry their template variables. */
  kinds: readonly KindRoute[];
  /** How long each Redis round trip may take before the call fails (a stalled Redis). */
  timeoutMs: number;
}

/**
 * The hot path: validate, append to the thread buffer, and for the first turn since the thread's
 * last reflection started, add its debounced reflection job. Redis only, never Postgres or a model
 * (invariant 1): one round trip per turn, two for the first turn of a burst. The job debounces
 * itself: when it wakes before the thread is quiet, it moves back to delayed (see thread-lease.ts).
 */
export class Producer {
  /** Context variables each kind's namespace needs, computed once (this is the hot path). */
  private readonly needs: Map<string, string[]>;
  private readonly allNeeds: string[];
  private readonly windows: Map<string, number>;
  /** The window of turns that name no kinds (most of them): the shortest of all kinds'. */
  private readonly defaultWindow: number;
  private readonly deadline: Deadline;

  constructor(
    private readonly buffers: ThreadBuffers,
    /** Every shard's reflection queue, shard n's at index n (queues.ts). */
    private readonly queues: EngramQueue<'reflection'>[],
    private readonly settings: ProducerSettings,
    private readonly log: Logger,
    /** What a failed append is rethrown as (the SDK's error classes); as it is when omitted. */
    private readonly failure: (err: unknown) => unknown = (err) => err,
  ) {
    this.needs = new Map(settings.kinds.map((k) => [k.name, templateVariables(k.namespace)]));
    this.allNeeds = [...new Set([...this.needs.values()].flat())];
    this.windows = new Map(settings.kinds.map((k) => [k.name, k.debounceMs ?? settings.debounceMs]));
    this.defaultWindow = this.windows.size ? Math.min(...this.windows.values()) : settings.debounceMs;
    this.deadline = new Deadline(
      settings.timeoutMs,
      'the turns may be buffered all the same: send them again with the same message ids, which make a re-send a no-op',
    );
  }

  /** The call's window, else the shortest window of the kinds the turns feed. */
  private debounceFor(names: string[] | undefined, override: number | undefined): number {
    if (override !== undefined) return override;
    if (!names) return this.defaultWindow;
    return Math.min(...names.map((n) => this.windows.get(n) as number));
  }

  /** Not async itself: one promise layer fewer on the hot path; a bad input still rejects. */
  enqueue(input: unknown): Promise<EnqueueResult> {
    const parsed = enqueueInputSchema.safeParse(input);
    if (!parsed.success) return Promise.reject(invalidInput('enqueue request', parsed.error));
    return this.enqueueParsed(parsed.data);
  }

  /** For callers that validated with the same schemas already (the HTTP route): no second parse. */
  async enqueueParsed(input: EnqueueParsed): Promise<EnqueueResult> {
    const { threadId, context, messages, kinds, debounceMs, policy } = input;
    this.checkKinds(kinds, context);
    const kindsJson = kinds ? JSON.stringify(kinds) : undefined;
    const turns = messages.map((m): TurnToAppend => ({ clientId: m.id, json: storedTurnJson(m, kindsJson) }));
    const delay = Math.min(this.debounceFor(kinds, debounceMs), this.settings.maxWaitMs);
    // The thread's shard: its turns and its job both go there (one CRC-32 of the id).
    const shard = this.buffers.shardOf(threadId);
    const buffer = this.buffers.at(shard);
    let appended;
    try {
      appended = await this.deadline.run(
        buffer.append(
          threadId,
          canonicalJson(context),
          this.settings.maxWaitMs,
          policy ?? this.settings.policy,
          delay,
          turns,
        ),
      );
    } catch (err) {
      // Only a failed call pays for it: a try block costs a call that succeeds nothing.
      throw this.failure(err);
    }
    if (appended.needsJob || appended.shorter) {
      try {
        const queue = this.queues[shard] as EngramQueue<'reflection'>;
        await this.deadline.run<unknown>(
          appended.needsJob ? scheduleReflection(queue, threadId, delay) : rescheduleReflection(queue, threadId, delay),
        );
      } catch (err) {
        // The turns are buffered: they are accepted, and the thread's ceiling makes the sweeper
        // add the job within maxWait. Failing the call here would make a client without message
        // ids send them again, as new turns. Let the next turn ask for the job at once.
        this.log.warn(
          { err, threadId },
          'turns buffered, but their reflection job could not be added yet; the ceiling sweeper will',
        );
        // Not awaited: on a stalled Redis it would hold the reply past the deadline.
        void buffer.clearScheduled(threadId).catch(() => undefined);
      }
    }
    if (this.log.isLevelEnabled('debug')) this.log.debug({ threadId, ...appended, delay }, 'turns enqueued');
    return { threadId, accepted: appended.added, duplicates: appended.duplicates };
  }

  /** Fails on the hot path, with no I/O, what would otherwise fail later in a worker. */
  private checkKinds(names: string[] | undefined, context: Record<string, string>) {
    // The common call names no kinds and carries every variable: a plain loop, no closure.
    if (!names) {
      let all = true;
      for (const v of this.allNeeds) if (!Object.hasOwn(context, v)) all = false;
      if (all) return;
    }
    const unknown = (names ?? []).filter((n) => !this.needs.has(n));
    if (unknown.length)
      throw new InputError(
        `unknown memory kind(s) ${unknown.join(', ')}; configured: ${[...this.needs.keys()].join(', ')}`,
      );
    const needed = names ? [...new Set(names.flatMap((n) => this.needs.get(n) ?? []))] : this.allNeeds;
    const missing = needed.filter((v) => !Object.hasOwn(context, v));
    if (missing.length)
      throw new InputError(
        `context is missing ${missing.map((m) => `"${m}"`).join(', ')}, needed by the memory namespaces`,
      );
  }
}

/**
 * A StoredTurn's JSON: only what the client sent. An id or time it left out comes from the
 * turn's entry id when read, rather than a UUID and a clock read here (docs/decisions.md, hot
 * path). Only the content is escaped: the schemas let no character that JSON escapes into a
 * role, message id, timestamp or kind name, so no object is walked.
 */
function storedTurnJson(m: Message, kindsJson: string | undefined): string {
  let json = `{"role":"${m.role}","content":${JSON.stringify(m.content)}`;
  if (m.id !== undefined) json += `,"id":"${m.id}"`;
  if (m.createdAt !== undefined) json += `,"createdAt":"${m.createdAt}"`;
  if (kindsJson !== undefined) json += `,"kinds":${kindsJson}`;
  return `${json}}`;
}

/** Context compared byte-for-byte in Redis, so key order must not matter. */
function canonicalJson(record: Record<string, string>): string {
  const keys = Object.keys(record);
  // Most contexts are one key, or already sorted: stringify as they are.
  let sorted = true;
  for (let i = 1; i < keys.length && sorted; i++) sorted = (keys[i - 1] as string) < (keys[i] as string);
  if (sorted) return JSON.stringify(record);
  return JSON.stringify(Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : 1))));
}
