import { z } from 'zod';
import type { ChatMessage, ChatTool } from '../llm/chat-model.js';
import { canDelete, canInsert, canUpdate, type MemoryKind } from './kinds.js';

/**
 * The extraction prompt and the tools' argument schemas, side by side: what the model is told
 * and what its answers are checked against. docs/model-requests.md shows a request built here.
 */

/** A turn as the manager reads it (a buffered turn fits; `createdAt` is optional for library use). */
export interface ConversationTurn {
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: string;
  createdAt?: string | undefined;
}

/**
 * An existing collection memory as the model sees it: a short alias, never the raw key
 * (docs/prior-art.md: mem0 #3931).
 */
export interface AliasedMemory {
  alias: string;
  kind: string;
  document: Record<string, unknown>;
}

export const UPDATE_TOOL = 'update_memory';
export const DELETE_TOOL = 'delete_memory';
export const insertToolName = (kind: string) => `insert_${kind}`;
export const patchToolName = (kind: string) => `patch_${kind}`;

/**
 * Which new turn said what a call records (1 for the first of <new_turns>): the memory holds from
 * that turn's time. Optional, and a value that names no turn is as if not given (the batch's last
 * turn's time, as before): a wrong date hint is not worth a repair round, nor failing the calls
 * that are right.
 */
export const SAID_IN_TURN = 'said_in_turn';
const saidInTurnSchema = z.number().int().positive().optional().catch(undefined);
const saidInTurnJson = {
  type: 'integer',
  minimum: 1,
  description: 'The number of the new turn that said it (the first one, if several)',
};

/** Tool arguments the model must send; everything it sends is parsed with these (invariant 7). */
export const updateArgsSchema = z.strictObject({
  id: z.string().min(1),
  document: z.record(z.string(), z.unknown()),
  [SAID_IN_TURN]: saidInTurnSchema,
});
export const deleteArgsSchema = z.strictObject({ id: z.string().min(1), [SAID_IN_TURN]: saidInTurnSchema });
/** An insert's arguments are the document, with `said_in_turn` beside its fields unless the kind has one so named. */
export const insertTurnSchema = z.object({ [SAID_IN_TURN]: saidInTurnSchema });
export const ownsSaidInTurn = (kind: MemoryKind) => SAID_IN_TURN in kind.schema.shape;
/** A profile patch is a JSON merge patch; the patched document is then checked against the kind's schema. */
export const patchArgsSchema = z.record(z.string(), z.unknown());

const SYSTEM = `You maintain the long-term memory of an AI assistant about its user.
Read the new conversation turns and decide what is worth remembering for future conversations:
stable facts, preferences, plans, relationships and notable events. Skip small talk and what only
matters within this conversation. Earlier turns are context only; they were already processed.

Existing memories are listed with short ids. Keep memory accurate and free of duplicates:
- a new fact: call the insert tool of its kind;
- a fact that refines, corrects or extends an existing memory: call ${UPDATE_TOOL} with its id and the
  complete new document;
- a memory the conversation shows is no longer true: call ${DELETE_TOOL} with its id;
- a profile: call its patch tool with only the fields that change (null removes a field).
New turns are numbered: give each insert, update or delete the number of the turn it comes from
(${SAID_IN_TURN}).
Only use ids from the list. Make all calls at once, in parallel. If nothing needs to change,
answer "no changes" without calling a tool.`;

/**
 * The tools for one extraction: one per kind (insert or patch), plus update and delete. With
 * `saidInTurn` (an extraction, whose turns are numbered; not a merge), inserts, updates and
 * deletes may name the turn they come from.
 */
export function buildTools(kinds: MemoryKind[], opts: { saidInTurn?: boolean } = {}): ChatTool[] {
  const turn = opts.saidInTurn ? { [SAID_IN_TURN]: saidInTurnJson } : {};
  const tools: ChatTool[] = [];
  for (const kind of kinds) {
    if (kind.mode === 'profile') {
      tools.push(
        tool(
          patchToolName(kind.name),
          `Patch the "${kind.name}" profile (created by the first patch): ${kind.description}`,
          patchJsonSchema(kind),
        ),
      );
    } else if (canInsert(kind)) {
      const schema = jsonSchema(kind);
      const parameters =
        opts.saidInTurn && !ownsSaidInTurn(kind)
          ? { ...schema, properties: { ...(schema.properties as Record<string, unknown>), ...turn } }
          : schema;
      tools.push(tool(insertToolName(kind.name), `Store a new "${kind.name}" memory: ${kind.description}`, parameters));
    }
  }
  const updatable = kinds.filter(canUpdate);
  if (updatable.length) {
    // One kind: its schema guides the model. Several: a plain object (the schema of each kind is
    // in its insert tool already; repeating all of them in an anyOf costs tokens on every call).
    const document =
      updatable.length === 1
        ? jsonSchema(updatable[0] as MemoryKind)
        : {
            type: 'object',
            description: `The complete new document, following the schema of the memory's kind (see insert_<kind>)`,
          };
    tools.push(
      tool(UPDATE_TOOL, 'Replace an existing memory with a corrected or extended document of the same kind.', {
        type: 'object',
        properties: { id: { type: 'string', description: 'The id of an existing memory' }, document, ...turn },
        required: ['id', 'document'],
        additionalProperties: false,
      }),
    );
  }
  if (kinds.some(canDelete)) {
    tools.push(
      tool(DELETE_TOOL, 'Delete an existing memory that is no longer true.', {
        type: 'object',
        properties: { id: { type: 'string', description: 'The id of an existing memory' }, ...turn },
        required: ['id'],
        additionalProperties: false,
      }),
    );
  }
  return tools;
}

/**
 * The conversation for the model. Sections are tagged and hold compact JSON, so that the model
 * (and a test double) can tell profiles, existing memories, earlier context and new turns apart.
 */
export function buildMessages(input: {
  kinds: MemoryKind[];
  existing: AliasedMemory[];
  profiles: Record<string, Record<string, unknown> | null>;
  earlier: ConversationTurn[];
  turns: ConversationTurn[];
}): ChatMessage[] {
  const shown = (t: ConversationTurn) =>
    t.createdAt ? { role: t.role, content: t.content, at: t.createdAt } : { role: t.role, content: t.content };
  const render = (turns: ConversationTurn[]) => JSON.stringify(turns.map(shown));
  // Numbered from 1, so that a call can say which turn it comes from (said_in_turn).
  const numbered = JSON.stringify(input.turns.map((t, i) => ({ turn: i + 1, ...shown(t) })));
  const user = [
    Object.keys(input.profiles).length ? `<profiles>\n${JSON.stringify(input.profiles)}\n</profiles>` : '',
    `<existing_memories>\n${JSON.stringify(input.existing.map((m) => ({ id: m.alias, kind: m.kind, document: m.document })))}\n</existing_memories>`,
    input.earlier.length
      ? `<earlier_turns note="already processed, context only">\n${render(input.earlier)}\n</earlier_turns>`
      : '',
    `<new_turns>\n${numbered}\n</new_turns>`,
  ]
    .filter(Boolean)
    .join('\n\n');
  return [
    { role: 'system', content: withKindNotes(SYSTEM, input.kinds) },
    { role: 'user', content: user },
  ];
}

/** A system prompt followed by the instructions of the kinds that have some. */
export function withKindNotes(system: string, kinds: MemoryKind[]): string {
  const notes = kinds
    .filter((k) => k.instructions)
    .map((k) => `Instructions for "${k.name}" memories:\n${k.instructions}`)
    .join('\n\n');
  return notes ? `${system}\n\n${notes}` : system;
}

/** Sent with the rejected calls' errors; accepted calls stand and must not be repeated. */
export const REPAIR_INSTRUCTION =
  'Some tool calls were rejected (see their errors). Accepted calls are kept: send corrected calls for the rejected ones only, or none if they should be dropped.';

function tool(name: string, description: string, parameters: Record<string, unknown>): ChatTool {
  return { type: 'function', function: { name, description, parameters } };
}

// JSON Schema generation is the costliest part of building a request. Keyed by the zod schema,
// which is immutable and shared by any copy of its kind (a merge copies the kind to turn its
// inserts off).
const schemaCache = new WeakMap<z.ZodObject, Record<string, unknown>>();
const patchSchemaCache = new WeakMap<z.ZodObject, Record<string, unknown>>();

/** A kind's document schema as JSON Schema (draft 7, input side), as the model's tools carry it. */
export function jsonSchema(kind: MemoryKind): Record<string, unknown> {
  let cached = schemaCache.get(kind.schema);
  if (!cached) {
    cached = toJson(kind.schema);
    schemaCache.set(kind.schema, cached);
  }
  return cached;
}

/** The kind's top-level fields, each optional and nullable: the shape of a merge patch. */
function patchJsonSchema(kind: MemoryKind): Record<string, unknown> {
  let cached = patchSchemaCache.get(kind.schema);
  if (!cached) {
    const shape = Object.fromEntries(
      Object.entries(kind.schema.shape).map(([k, v]) => [k, (v as z.ZodType).nullable().optional()]),
    );
    cached = toJson(z.object(shape));
    patchSchemaCache.set(kind.schema, cached);
  }
  return cached;
}

function toJson(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<
    string,
    unknown
  >;
  return rest;
}
