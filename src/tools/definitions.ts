import { z } from 'zod';
import { storableText } from '../core/safe-text.js';
import type { ChatTool } from '../llm/chat-model.js';
import { jsonSchema } from '../memory/extraction-prompt.js';
import { canDelete, canInsert, canUpdate, type CollectionKind, type MemoryKind } from '../memory/kinds.js';

/**
 * The hot-path memory tools an agent's model calls itself (LangMem's `manage_memory` and
 * `search_memory`): their OpenAI-format definitions, built from the kinds, and the schemas their
 * arguments are parsed with. docs/memory-tools.md shows what this file produces.
 */

export const MANAGE_TOOL = 'manage_memory';
export const SEARCH_TOOL = 'search_memory';
export const MANAGE_ACTIONS = ['create', 'update', 'delete'] as const;
export type ManageAction = (typeof MANAGE_ACTIONS)[number];

/** Memories one search returns at most: a tool result lands in the model's context whole. */
export const SEARCH_LIMIT_MAX = 20;
/**
 * The tokens (characters / 4, as recall counts them) of the memories one search or recall
 * answers with, when the model does not say, and at most: a memory's document may be large, and
 * twenty of them would fill a context. 4,000 holds twenty memories of a few sentences each.
 */
export const TOOL_TOKEN_BUDGET = 4_000;
export const TOOL_TOKEN_BUDGET_MAX = 32_000;

/** The `tokenBudget` argument of search_memory, MCP's recall and memory_history. */
export function tokenBudgetSchema(what: string, whole = 'whole memories') {
  return z
    .int()
    .min(1)
    .max(TOOL_TOKEN_BUDGET_MAX)
    .default(TOOL_TOKEN_BUDGET)
    .describe(
      `Tokens ${what} may take at most (about 4 characters each); ${whole} that do not fit are left out, and the answer says how many`,
    );
}

/** What an answer says when whole memories were left out for its token budget. */
export function leftOutNote(leftOut: number, budget: number, within = 'this answer'): string {
  const them = leftOut === 1 ? '1 more memory was' : `${leftOut} more memories were`;
  return `${them} found but left out to keep ${within} within tokenBudget ${budget}; ask again with a larger tokenBudget (at most ${TOOL_TOKEN_BUDGET_MAX}) or a narrower query to see more`;
}

/** What memory_history says when earlier changes were left out for its token budget. */
export function earlierLeftOutNote(leftOut: number, budget: number): string {
  const them = leftOut === 1 ? '1 earlier change was' : `${leftOut} earlier changes were`;
  return `${them} left out to keep this answer within tokenBudget ${budget}; ask again with a larger tokenBudget (at most ${TOOL_TOKEN_BUDGET_MAX}) to see more`;
}

/** Collection kinds: the tools manage those (a profile is one document, patched by reflections). */
export const toolKinds = (kinds: readonly MemoryKind[]): CollectionKind[] =>
  kinds.filter((k): k is CollectionKind => k.mode === 'collection');

/**
 * A document as model output is checked (invariant 7): against its kind's schema, or the reason
 * it does not match, worded for the model to repair from.
 */
export function parseDocument(
  kind: CollectionKind,
  document: unknown,
): { document: Record<string, unknown> } | { error: string } {
  const doc = kind.schema.safeParse(document);
  if (!doc.success)
    return { error: `the document does not match the "${kind.name}" schema: ${z.prettifyError(doc.error)}` };
  return { document: doc.data };
}

/** search_memory's arguments: what the model sends is parsed with this, and its definition made from it. */
export function searchArgsSchema(kinds: readonly MemoryKind[]) {
  const names = toolKinds(kinds).map((k) => k.name) as [string, ...string[]];
  return z.strictObject({
    query: z
      .string()
      .min(1, 'must not be empty')
      .max(2_000)
      .check(storableText)
      .describe('What to look for: a topic, a question, or the fact you are about to store'),
    limit: z
      .int()
      .min(1)
      .max(SEARCH_LIMIT_MAX)
      .default(5)
      .describe(`How many memories to return, most relevant first (at most ${SEARCH_LIMIT_MAX})`),
    kind: z.enum(names).optional().describe('Only memories of this kind; every kind when omitted'),
    tokenBudget: tokenBudgetSchema('the memories found'),
  });
}
export type SearchArgs = z.output<ReturnType<typeof searchArgsSchema>>;

/**
 * manage_memory's arguments before the action is known: which fields go with which action, and
 * the document against its kind's schema, are checked after (session.ts), so that each mistake
 * gets its own message.
 */
export const manageArgsSchema = z.strictObject({
  action: z.enum(MANAGE_ACTIONS),
  id: z.string().min(1).max(64).optional(),
  kind: z.string().min(1).max(64).optional(),
  document: z.record(z.string(), z.unknown()).optional(),
});
export type ManageArgs = z.output<typeof manageArgsSchema>;

const MANAGE_DESCRIPTION = `Create, update or delete a long-term memory about the user, kept across conversations.
- create: a new fact, preference, plan or event worth remembering (search first, so as not to store it twice);
- update: a memory the conversation refines or corrects, by its id, with the complete new document;
- delete: a memory that is no longer true, by its id.
Ids (m1, m2...) come from search_memory and from earlier calls of this conversation.`;

const SEARCH_DESCRIPTION = `Search the long-term memories about the user, most relevant first. Use it before answering
when earlier conversations may matter, and before creating a memory. Each result has an id for manage_memory.`;

/** The tools for these kinds, in OpenAI's format; none when no collection kind is given. */
export function buildToolDefinitions(kinds: readonly MemoryKind[]): ChatTool[] {
  const collections = toolKinds(kinds);
  if (collections.length === 0) return [];
  return [manageDefinition(collections), searchDefinition(kinds)];
}

function searchDefinition(kinds: readonly MemoryKind[]): ChatTool {
  const { $schema: _ignored, ...parameters } = z.toJSONSchema(searchArgsSchema(kinds), {
    target: 'draft-7',
    io: 'input',
  }) as Record<string, unknown>;
  return tool(SEARCH_TOOL, SEARCH_DESCRIPTION, parameters);
}

function manageDefinition(kinds: CollectionKind[]): ChatTool {
  const actions = MANAGE_ACTIONS.filter((a) =>
    kinds.some(a === 'create' ? canInsert : a === 'update' ? canUpdate : canDelete),
  );
  const insertable = kinds.filter(canInsert);
  const documented = kinds.filter((k) => canInsert(k) || canUpdate(k));
  const properties: Record<string, unknown> = {
    action: { type: 'string', enum: actions },
    id: { type: 'string', description: 'For update and delete: the id of the memory (m1, m2...)' },
  };
  // One kind needs no name: every memory is of it.
  if (insertable.length > 1)
    properties.kind = {
      type: 'string',
      enum: insertable.map((k) => k.name),
      description: 'For create: the kind of the new memory',
    };
  if (documented.length === 1)
    properties.document = {
      ...jsonSchema(documented[0] as CollectionKind),
      description: 'For create and update: the complete document',
    };
  else if (documented.length > 1)
    properties.document = {
      description: "For create and update: the complete document, following its kind's schema",
      anyOf: documented.map((k) => ({ title: k.name, ...jsonSchema(k) })),
    };
  const kindNotes = kinds
    .map(
      (k) => `- ${k.name}: ${k.description}${k.instructions ? `\n  ${k.instructions.replaceAll('\n', '\n  ')}` : ''}`,
    )
    .join('\n');
  return tool(MANAGE_TOOL, `${MANAGE_DESCRIPTION}\nKinds of memory:\n${kindNotes}`, {
    type: 'object',
    properties,
    required: ['action'],
    additionalProperties: false,
  });
}

function tool(name: string, description: string, parameters: Record<string, unknown>): ChatTool {
  return { type: 'function', function: { name, description, parameters } };
}
