import { z } from 'zod';
import { intRange } from './int-range.js';
import { storableText } from './safe-text.js';

/**
 * The ground floor: names and ids every layer shares (config, the hot path, the store, the API,
 * formation). Imports nothing of engram's, so that any layer may import it without reaching into
 * another's folder.
 */

/** A thread or message id: the caller's, kept short because it is part of every buffer key. */
export const ID_CHARS = 128;

// One check per field where one can say it all: every check is code the hot path runs cold,
// after each round trip (docs/decisions.md, "hot path").
const THREAD = `[A-Za-z0-9][A-Za-z0-9_.:@\\-]{0,${ID_CHARS - 1}}`;
export const threadIdSchema = z
  .string()
  .regex(
    new RegExp(`^${THREAD}$`),
    `must be 1 to ${ID_CHARS} characters: a letter or digit, then letters, digits and _ . : @ -`,
  );

/** One pattern for a tenant's name, for API_KEYS, the API and the thread ids filed behind it. */
const TENANT = '[A-Za-z0-9][A-Za-z0-9_.-]{0,63}';

/**
 * A tenant's name: the first label of its namespaces, and what its threads are filed behind
 * (`acme/t1`, which the reflection job's payload schema must accept).
 */
export const tenantNameSchema = z
  .string()
  .regex(new RegExp(`^${TENANT}$`), 'must be 1 to 64 characters: a letter or digit, then letters, digits and _ . -');

/**
 * A thread id as engram keys it: the caller's id, behind its tenant when API keys are on
 * (`acme/t1`), so that two tenants' threads of the same name never share a buffer or cursor.
 */
export const internalThreadIdSchema = z
  .string()
  .regex(new RegExp(`^(?:${TENANT}/)?${THREAD}$`), 'must be a thread id, optionally behind "<tenant>/"');

/** The tenant a thread is filed behind (`acme` of `acme/t1`), or null for one filed behind none. */
export function threadTenant(threadId: string): string | null {
  const slash = threadId.indexOf('/');
  return slash < 0 ? null : threadId.slice(0, slash);
}

export const kindNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be a lower-case identifier (a-z, 0-9, _)');

/** A namespace: a tuple of labels such as ["chat", "user-42"]. Labels are opaque text. */
export const namespaceSchema = z
  .array(z.string().min(1, 'namespace labels must not be empty').max(256).check(storableText))
  .min(1, 'a namespace has at least one label')
  .max(16);
export type Namespace = z.infer<typeof namespaceSchema>;

/** A quiet window (ms) a kind or one enqueue call sets instead of the deployment's. */
export const debounceWindowSchema = intRange(0, 24 * 3600_000);

/**
 * What happens to a running reflection when its thread gets new turns:
 * `enqueue` lets it commit and a follow-up handles the new turns; `rollback` aborts it before it
 * commits, so that one reflection sees all turns (one model call instead of two).
 */
export const reflectionPolicySchema = z.enum(['enqueue', 'rollback']);
export type ReflectionPolicy = z.infer<typeof reflectionPolicySchema>;

/**
 * The history actor of a memory tool's writes (`tool:manage_memory`, MCP's `tool:forget`): one
 * per tool, whichever user or tenant the tool wrote for, so an undo by it must say whose.
 */
export const TOOL_ACTOR_PREFIX = 'tool:';
export const toolActor = (tool: string): string => `${TOOL_ACTOR_PREFIX}${tool}`;

/** The actors engram writes as by default, each the same for every caller of its door. */
const DEFAULT_ACTORS: Readonly<Record<string, string>> = {
  api: "the HTTP store's default actor",
  sdk: "the SDK store's default actor",
  admin: "the memory browser's actor",
};

/**
 * What an actor shared by many users is, or null for one that names one change set (a job's
 * `reflection:<id>@<ms>`, an application's own actor). A revert by a shared actor is shared too.
 * `own`: the default actor of the store asking (an SDK client's `store.actor`), shared by every
 * put it makes without one, which only that store knows.
 */
export function sharedActor(actor: string, own?: string): string | null {
  if (own !== undefined && actor === own) return "this store's default actor";
  if (actor.startsWith(TOOL_ACTOR_PREFIX)) return "a memory tool's actor";
  if (Object.hasOwn(DEFAULT_ACTORS, actor)) return DEFAULT_ACTORS[actor] ?? null;
  // Under API keys the HTTP store writes as `api:<tenant>` (a caller's own actor follows it).
  if (/^api:[^:]+$/.test(actor)) return "an API key's default actor";
  if (actor.startsWith('revert:')) {
    const of = sharedActor(actor.slice('revert:'.length), own);
    return of === null ? null : `a revert by ${of}`;
  }
  return null;
}
