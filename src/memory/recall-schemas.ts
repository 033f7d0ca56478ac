import { z } from 'zod';
import { intRange } from '../core/int-range.js';
import { kindNameSchema } from '../core/names.js';
import { storableText } from '../core/safe-text.js';
import { contextSchema, messageSchema } from '../queue/schemas.js';
import { asOfSchema, consistencySchema, searchModeSchema } from '../store/schemas.js';
import { namespaceSchema, timeSchema } from '../store/types.js';

/** One namespace's memories, most similar to `query` first (`GET /v1/memories/search`, SDK `search`). */
export const searchInputSchema = z.strictObject({
  namespace: namespaceSchema,
  query: z.string().min(1, 'must not be empty').max(8_000).check(storableText),
  limit: intRange(1, 100).default(10),
  offset: intRange(0, 100_000).default(0),
  /** How to rank; vector similarity when omitted (recall defaults to hybrid). */
  mode: searchModeSchema.optional(),
  asOf: asOfSchema.optional(),
  /** Renew the TTL of the memories returned; omitted: the store-wide default. */
  refreshTtl: z.boolean().optional(),
  /** `primary`: see every committed write; omitted: a read replica may serve it, a moment behind. */
  consistency: consistencySchema.optional(),
});
export type SearchInput = z.input<typeof searchInputSchema>;

/**
 * What an application asks before its next model call (`POST /v1/recall`, SDK `recall`): the
 * thread's context (which fills each kind's namespace, as a reflection does), and what to recall
 * for: a `query`, or the conversation's latest `messages`.
 */
export const recallInputSchema = z
  .strictObject({
    context: contextSchema,
    query: z.string().min(1, 'must not be empty').max(8_000).check(storableText).optional(),
    /** The latest turns: their newest texts make the query. */
    messages: z
      .array(messageSchema.pick({ role: true, content: true }))
      .min(1)
      .max(100)
      .optional(),
    /** Only these kinds; every configured kind when omitted. */
    kinds: z.array(kindNameSchema).min(1).max(32).optional(),
    /** Memories at most (profiles come on top). */
    limit: intRange(1, 100).default(10),
    /** Tokens the whole recall may take in a prompt (chars / 4); none when omitted. */
    tokenBudget: intRange(1, 200_000).optional(),
    mode: searchModeSchema.default('hybrid'),
    asOf: asOfSchema.optional(),
    /** Hybrid only: newer memories weigh more, by `weight` (0..1) over a half-life (ms). */
    recency: z
      .strictObject({ halfLifeMs: intRange(1, Number.MAX_SAFE_INTEGER), weight: z.number().min(0).max(1) })
      .optional(),
    refreshTtl: z.boolean().optional(),
    consistency: consistencySchema.optional(),
  })
  .refine((r) => (r.query === undefined) !== (r.messages === undefined), {
    error: (issue) =>
      (issue.input as { query?: unknown }).query === undefined
        ? 'give `query` (the text to recall for) or `messages` (the recent turns)'
        : 'give either `query` or `messages`, not both',
    path: ['query'],
  })
  // Hybrid only: another mode would silently leave it out.
  .refine((r) => r.recency === undefined || r.mode === 'hybrid', {
    message: 'recency weighs a hybrid recall only: leave it out, or use mode "hybrid"',
    path: ['recency'],
  });
export type RecallInput = z.input<typeof recallInputSchema>;
export type RecallParsed = z.output<typeof recallInputSchema>;

/** A profile as recall returns it: one kind's whole document for the user. */
export const recalledProfileSchema = z
  .object({
    kind: z.string(),
    namespace: z.array(z.string()),
    key: z.string(),
    version: z.number(),
    value: z
      .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null)
      .meta({ type: 'object', additionalProperties: true }),
    updatedAt: timeSchema,
  })
  .meta({ id: 'RecalledProfile' });
export type RecalledProfile = z.output<typeof recalledProfileSchema>;

/** A memory as recall returns it: `score` is its rank's score in the search mode used. */
export const recalledMemorySchema = recalledProfileSchema
  .extend({ score: z.number().nullable() })
  .meta({ id: 'RecalledMemory' });
export type RecalledMemory = z.output<typeof recalledMemorySchema>;

export const recallResultSchema = z
  .object({
    profiles: z.array(recalledProfileSchema),
    memories: z.array(recalledMemorySchema),
    /** The prompt block (recall-prompt.ts), '' when nothing was recalled. */
    prompt: z.string(),
    /** The block's estimated tokens (characters / 4). */
    tokens: z.number(),
    /**
     * Present when `tokenBudget` left out profiles or memories that ranked within `limit`: how
     * many (whole ones: a document is never cut).
     */
    leftOut: z
      .number()
      .optional()
      .describe('set when the token budget left out whole profiles or memories that ranked within the limit: how many'),
    /**
     * Present when the memories were ranked by text alone because the query could not be
     * embedded (the embedding model out of reach, failing or rate limited): a hybrid recall
     * answers with its text half rather than failing the chat turn.
     */
    degraded: z
      .object({ ranking: z.literal('text'), reason: z.string() })
      .optional()
      .describe('set when the query could not be embedded and the memories were ranked by text alone'),
  })
  .meta({ id: 'RecallResult' });
export type RecallResult = z.output<typeof recallResultSchema>;
