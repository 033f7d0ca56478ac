import type OpenAI from 'openai';
import { z } from 'zod';
import type { BufferedTurn } from '../queue/schemas.js';
import type { MemoryKind } from './kinds.js';

type Tool = OpenAI.Chat.Completions.ChatCompletionTool;
type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/** An existing memory as the model sees it: a short alias, never the raw key (LESSONS: mem0 #3931). */
export interface AliasedMemory {
  alias: string;
  kind: string;
  document: Record<string, unknown>;
}

export const UPDATE_TOOL = 'update_memory';
export const DELETE_TOOL = 'delete_memory';
export const insertToolName = (kind: string) => `insert_${kind}`;

/** Tool arguments the model must send; everything it sends is parsed with these (invariant 7). */
export const updateArgsSchema = z.strictObject({ id: z.string().min(1), document: z.record(z.string(), z.unknown()) });
export const deleteArgsSchema = z.strictObject({ id: z.string().min(1) });

const SYSTEM = `You maintain the long-term memory of an AI assistant about its user.
Read the new conversation turns and decide what is worth remembering for future conversations:
stable facts, preferences, plans, relationships and notable events. Skip small talk and anything
only useful within this conversation.

Existing memories are listed with short ids. Keep the memory accurate and free of duplicates:
- a new fact: call the insert tool of the right kind;
- a fact that refines, corrects or extends an existing memory: call ${UPDATE_TOOL} with its id and
  the complete new document;
- a memory the conversation shows is no longer true: call ${DELETE_TOOL} with its id.
Only use ids from the list. Make all calls at once, in parallel. If nothing needs to change,
answer "no changes" without calling a tool.`;

/** The tools for one reflection: one insert tool per kind, plus update and delete. */
export function buildTools(kinds: MemoryKind[]): Tool[] {
  const tools: Tool[] = [];
  for (const kind of kinds) {
    if (!kind.enableInserts) continue;
    tools.push({
      type: 'function',
      function: {
        name: insertToolName(kind.name),
        description: `Store a new "${kind.name}" memory: ${kind.description}`,
        parameters: jsonSchema(kind.schema),
      },
    });
  }
  const updatable = kinds.filter((k) => k.enableUpdates);
  if (updatable.length) {
    const documentSchema =
      updatable.length === 1 ? jsonSchema((updatable[0] as MemoryKind).schema) : { anyOf: updatable.map((k) => jsonSchema(k.schema)) };
    tools.push({
      type: 'function',
      function: {
        name: UPDATE_TOOL,
        description: 'Replace an existing memory with a corrected or extended document of the same kind.',
        parameters: {
          type: 'object',
          properties: { id: { type: 'string', description: 'The id of an existing memory' }, document: documentSchema },
          required: ['id', 'document'],
          additionalProperties: false,
        },
      },
    });
  }
  if (kinds.some((k) => k.enableDeletes)) {
    tools.push({
      type: 'function',
      function: {
        name: DELETE_TOOL,
        description: 'Delete an existing memory that is no longer true.',
        parameters: {
          type: 'object',
          properties: { id: { type: 'string', description: 'The id of an existing memory' } },
          required: ['id'],
          additionalProperties: false,
        },
      },
    });
  }
  return tools;
}

/**
 * The conversation for the model. Sections are tagged and hold JSON, so that the model (and a
 * test double) can tell existing memories, earlier context and new turns apart.
 */
export function buildMessages(input: {
  kinds: MemoryKind[];
  existing: AliasedMemory[];
  earlier: BufferedTurn[];
  turns: BufferedTurn[];
}): ChatMessage[] {
  const kindNotes = input.kinds
    .filter((k) => k.instructions)
    .map((k) => `Instructions for "${k.name}" memories:\n${k.instructions}`)
    .join('\n\n');
  const render = (turns: BufferedTurn[]) => JSON.stringify(turns.map((t) => ({ role: t.role, content: t.content, at: t.createdAt })));
  const user = [
    `<existing_memories>\n${JSON.stringify(input.existing.map((m) => ({ id: m.alias, kind: m.kind, document: m.document })))}\n</existing_memories>`,
    input.earlier.length ? `<earlier_turns note="already processed, context only">\n${render(input.earlier)}\n</earlier_turns>` : '',
    `<new_turns>\n${render(input.turns)}\n</new_turns>`,
  ]
    .filter(Boolean)
    .join('\n\n');
  return [
    { role: 'system', content: kindNotes ? `${SYSTEM}\n\n${kindNotes}` : SYSTEM },
    { role: 'user', content: user },
  ];
}

function jsonSchema(schema: z.ZodObject): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  return rest;
}
