import { z } from 'zod';
import { isoTimeSchema } from '../core/iso-time.js';
import {
  debounceWindowSchema,
  reflectionPolicySchema,
  ID_CHARS,
  internalThreadIdSchema,
  kindNameSchema,
  threadIdSchema,
} from '../core/names.js';
import { textProblem } from '../core/safe-text.js';

/**
 * The enqueue boundary (SDK call and HTTP body share it) and the job payloads.
 * Limits are deliberate: the hot path must stay one small Redis write, and a turn is chat text,
 * not a document store.
 */
export const LIMITS = {
  messagesPerCall: 100,
  contentChars: 32_000,
  idChars: ID_CHARS,
  contextKeys: 16,
  contextValueChars: 256,
} as const;

export const messageSchema = z.strictObject({
  /** Client-supplied ids are idempotency keys: a message sent twice is buffered once. */
  id: threadIdSchema.optional(),
  role: z.enum(['user', 'assistant', 'system', 'tool']),
  content: z.string().min(1, 'must not be empty').max(LIMITS.contentChars),
  createdAt: isoTimeSchema.optional(),
});
export type Message = z.infer<typeof messageSchema>;

const contextKey = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/**
 * Values that fill namespace templates such as ["chat", "{userId}"]. One loop checks keys, values
 * and their number, which a record of key and value schemas would do in three passes.
 */
export const contextSchema = z
  .object({})
  .catchall(z.string())
  .check((ctx) => {
    let keys = 0;
    for (const key in ctx.value) {
      keys++;
      const value = ctx.value[key] as string;
      if (!contextKey.test(key))
        ctx.issues.push({
          code: 'custom',
          input: key,
          path: [key],
          message: 'context keys must be identifiers (letters, digits, _; at most 64)',
        });
      if (value.length < 1 || value.length > LIMITS.contextValueChars)
        ctx.issues.push({
          code: 'custom',
          input: value,
          path: [key],
          message: `must be 1 to ${LIMITS.contextValueChars} characters`,
        });
      // Context values fill namespace labels, which Postgres cannot store with a NUL or a lone
      // surrogate: accepted here, the thread's reflection would fail for good.
      else {
        const problem = textProblem(value);
        if (problem) ctx.issues.push({ code: 'custom', input: value, path: [key], message: problem });
      }
    }
    if (keys > LIMITS.contextKeys)
      ctx.issues.push({ code: 'custom', input: ctx.value, message: `at most ${LIMITS.contextKeys} context keys` });
  });
export type ThreadContext = z.infer<typeof contextSchema>;

export const enqueueBodySchema = z.strictObject({
  context: contextSchema,
  messages: z
    .array(messageSchema)
    .min(1, 'at least one message')
    .max(LIMITS.messagesPerCall)
    // An id names one message: a second one under it in the same call would be dropped as a
    // re-send, though it is another message.
    .check((ctx) => {
      const seen = new Map<string, number>();
      ctx.value.forEach((m, i) => {
        if (m.id === undefined) return;
        const first = seen.get(m.id);
        if (first === undefined) seen.set(m.id, i);
        else
          ctx.issues.push({
            code: 'custom',
            input: m.id,
            path: [i, 'id'],
            message: `repeats the id of message ${first}: each message of a call needs its own id`,
          });
      });
    }),
  /** Which memory kinds these turns feed; all configured kinds when omitted. */
  kinds: z.array(kindNameSchema).min(1).max(32).optional(),
  /** Override the quiet window for this thread (ms). */
  debounceMs: debounceWindowSchema.optional(),
  /** Override the deployment's REFLECTION_POLICY for this thread. */
  policy: reflectionPolicySchema.optional(),
});
export const enqueueInputSchema = enqueueBodySchema.extend({ threadId: threadIdSchema });
/** What the producer takes from callers that validated already (the HTTP route, with tenancy). */
export type EnqueueParsed = Omit<EnqueueInput, 'threadId'> & { threadId: string };
export type EnqueueInput = z.infer<typeof enqueueInputSchema>;

export const enqueueResultSchema = z
  .object({
    threadId: z.string(),
    /** Messages newly buffered. */
    accepted: z.number(),
    /** Messages whose id was already buffered (idempotent re-send). */
    duplicates: z.number(),
  })
  .meta({ id: 'EnqueueResult' });
export type EnqueueResult = z.output<typeof enqueueResultSchema>;

/**
 * A turn as it sits in the thread buffer: the message as the client sent it. An id or time the
 * client left out is not made on the hot path; the turn's entry id stands in (buffer.ts).
 */
export const storedTurnSchema = z.object({
  id: z.string().optional(),
  role: messageSchema.shape.role,
  content: z.string(),
  createdAt: z.string().optional(),
  kinds: z.array(z.string()).optional(),
});
type StoredTurn = z.infer<typeof storedTurnSchema>;
/** A turn as a reflection reads it: always with an id and a time. */
export type BufferedTurn = StoredTurn & { id: string; createdAt: string };

/** Job payloads stay tiny (ids only): turns are read from the buffer, so a dropped add loses nothing. */
export const jobPayloads = {
  reflection: z.strictObject({ threadId: internalThreadIdSchema }),
  consolidation: z.strictObject({ tick: z.string().min(1) }),
} as const;
export type QueueName = keyof typeof jobPayloads;
export type JobPayload<Q extends QueueName> = z.infer<(typeof jobPayloads)[Q]>;
export const QUEUE_NAMES = Object.keys(jobPayloads) as QueueName[];
