import { z } from 'zod';
import { toolActor } from '../core/names.js';
import { InputError } from '../errors.js';
import { formatPath, JSON_MAX_DEPTH, jsonProblem } from '../core/json-bounds.js';
import type { ChatTool } from '../llm/chat-model.js';
import { canDelete, canInsert, canUpdate, type CollectionKind, type MemoryKind } from '../memory/kinds.js';
import { canonical, type ManagerOp } from '../memory/tool-calls.js';
import type { MemoryToolBackend, StoredMemory } from './backend.js';
import { estimateTokens } from '../memory/recall-prompt.js';
import {
  buildToolDefinitions,
  leftOutNote,
  MANAGE_TOOL,
  manageArgsSchema,
  parseDocument,
  SEARCH_TOOL,
  searchArgsSchema,
  toolKinds,
  type ManageArgs,
} from './definitions.js';
import { ShortIds } from './short-ids.js';

/**
 * A tool call as the model sent it: an OpenAI `tool_calls` entry, as the `openai` package types
 * it (a function call, or a custom tool's call, which these tools never are).
 */
const functionCallSchema = z.object({
  id: z.string(),
  type: z.literal('function').optional(),
  function: z.object({ name: z.string(), arguments: z.string() }),
});
const customCallSchema = z.object({
  id: z.string(),
  type: z.literal('custom'),
  custom: z.object({ name: z.string(), input: z.string() }),
});
export type ToolCall = z.input<typeof functionCallSchema> | z.input<typeof customCallSchema>;
// By its type, so that a bad call is told what is wrong with it (a union says "invalid input").
const toolCallSchema = (call: unknown) =>
  (call as { type?: unknown } | null)?.type === 'custom' ? customCallSchema : functionCallSchema;

/** What goes back to the model for one call. */
export interface ToolMessage {
  role: 'tool';
  tool_call_id: string;
  content: string;
}

/** One call's outcome: a result for the model, or what to fix (nothing was written). */
export type ToolResult = { ok: true; result: Record<string, unknown> } | { ok: false; error: string };

/** Tool arguments: one walk bounds them before any schema (hostile input is input). */
const ARGS_BOUNDS = { object: {}, maxDepth: JSON_MAX_DEPTH, text: true, maxChars: 200_000 };

const fail = (error: string): ToolResult => ({ ok: false, error });

/**
 * One conversation's memory tools (`manage_memory`, `search_memory`) over one context: the
 * definitions to send the model, and `runToolCall` to execute what it calls. Arguments are
 * checked as a reflection checks model output (invariant 7): bad ones get a message the model
 * can repair from, and nothing is written. Memories are shown under short ids (m1, m2...) that
 * the session keeps (short-ids.ts): the model never sees a key, and can only change memories
 * this session has shown it, in the context's own namespaces.
 *
 * A session is cheap: make one per conversation (or per request) with the user's context.
 */
export class ToolSession {
  /** OpenAI-format definitions, for `tools` of a chat completion. */
  readonly tools: ChatTool[];
  private readonly kinds: Map<string, CollectionKind>;
  private readonly ids = new ShortIds();

  constructor(
    private readonly backend: MemoryToolBackend,
    readonly context: Record<string, string>,
    kinds: readonly MemoryKind[],
  ) {
    this.kinds = new Map(toolKinds(kinds).map((k) => [k.name, k]));
    this.tools = buildToolDefinitions(kinds);
  }

  /**
   * Executes one tool call and returns the message to append to the conversation. Never throws
   * for what the model sent; throws when the store or embedding model fails (the model cannot
   * fix that: the application decides).
   */
  async runToolCall(call: ToolCall): Promise<ToolMessage> {
    const parsed = toolCallSchema(call).safeParse(call);
    if (!parsed.success)
      throw new InputError(`runToolCall takes an entry of the model's tool_calls: ${z.prettifyError(parsed.error)}`);
    const given = parsed.data;
    const outcome =
      'function' in given
        ? await this.call(given.function.name, given.function.arguments)
        : fail(`${given.custom.name}: the memory tools are function tools; call them with JSON arguments`);
    return { role: 'tool', tool_call_id: given.id, content: toolContent(outcome) };
  }

  /** One call by name, with its arguments as JSON text (as a model sends them). */
  call(name: string, json: string): Promise<ToolResult> {
    let args: unknown;
    try {
      args = JSON.parse(json);
    } catch {
      return Promise.resolve(fail(`${name}: the arguments are not valid JSON`));
    }
    return this.run(name, args);
  }

  /** One call by name, with its arguments parsed (an MCP request, a test). */
  async run(name: string, args: unknown, as = name): Promise<ToolResult> {
    const problem = jsonProblem(args, ARGS_BOUNDS);
    if (problem)
      return fail(`${as}: ${problem.path.length ? formatPath(problem.path) : 'the arguments'} ${problem.message}`);
    if (name === SEARCH_TOOL) return this.search(args);
    if (name === MANAGE_TOOL) return this.manage(args, as);
    return fail(`unknown tool "${name}"; the memory tools are ${MANAGE_TOOL} and ${SEARCH_TOOL}`);
  }

  /**
   * manage_memory under another tool's name (an MCP `remember` or `forget`): the same checks,
   * messages naming `tool`, and `tool:<tool>` as the history actor.
   */
  manageAs(tool: string, args: ManageArgs): Promise<ToolResult> {
    // Fields left out may arrive as undefined (an MCP handler's destructured arguments); JSON has none.
    const given = Object.fromEntries(Object.entries(args).filter(([, v]) => v !== undefined));
    return this.run(MANAGE_TOOL, given, tool);
  }

  /**
   * The memory a short id of this session names, if it does, deleted ones included: a memory's
   * history outlives it (as `GET /v1/store/items/history` reads it by key).
   */
  resolve(id: string): StoredMemory | undefined {
    return this.ids.find(id);
  }

  /** The short id of a memory found outside the tools (a recall), so that the model can change it. */
  idOf(memory: StoredMemory): string {
    return this.ids.add(memory);
  }

  private async search(raw: unknown): Promise<ToolResult> {
    const parsed = searchArgsSchema([...this.kinds.values()]).safeParse(raw);
    if (!parsed.success) return fail(`${SEARCH_TOOL}: ${z.prettifyError(parsed.error)}`);
    const { query, limit, kind, tokenBudget } = parsed.data;
    const found = await this.backend.search({
      context: this.context,
      kinds: kind ? [kind] : [...this.kinds.keys()],
      query,
      limit,
    });
    // Whole memories, best first, while they fit: a document is never cut (it would no longer be
    // JSON the model can copy back), and what is left out is the least relevant, said so.
    let used = estimateTokens('{"memories":[]}');
    const fit: StoredMemory[] = [];
    for (const m of found) {
      const cost = estimateTokens(JSON.stringify({ id: 'm0000', ...card(m) })) + 1;
      if (used + cost > tokenBudget) break;
      used += cost;
      fit.push(m);
    }
    const memories = fit.map((m) => this.shown(m));
    const leftOut = found.length - fit.length;
    if (leftOut === 0) return { ok: true, result: { memories } };
    return { ok: true, result: { memories, leftOut, note: leftOutNote(leftOut, tokenBudget) } };
  }

  private async manage(raw: unknown, tool: string): Promise<ToolResult> {
    const parsed = manageArgsSchema.safeParse(raw);
    if (!parsed.success) return fail(`${tool}: ${z.prettifyError(parsed.error)}`);
    const decided = this.decide(parsed.data);
    if ('error' in decided) return fail(`${tool}: ${decided.error}`);
    if ('unchanged' in decided) return { ok: true, result: { result: 'unchanged', id: decided.unchanged } };
    const { op, id } = decided;
    const outcome = await this.backend.apply({ context: this.context, op, actor: toolActor(tool) });
    if (outcome.status === 'conflict') {
      if (!outcome.current) {
        if (id) this.ids.retire(id);
        return fail(`${tool}: memory ${id} no longer exists (deleted since you read it); nothing was changed`);
      }
      const now = this.shown(outcome.current);
      return fail(
        `${tool}: memory ${now.id} changed since you read it; nothing was changed. It now reads ${JSON.stringify(now.document)}: send the call again if it still applies`,
      );
    }
    const action = parsed.data.action;
    if (action === 'delete') {
      this.ids.retire(id as string);
      return { ok: true, result: { result: 'deleted', id } };
    }
    const written = outcome.memory as StoredMemory;
    // A temporal kind's update opens a new memory (the old one is invalidated): the id follows it.
    const newId = id ? this.ids.rebind(id, written) : this.ids.add(written);
    return { ok: true, result: { result: action === 'create' ? 'created' : 'updated', id: newId } };
  }

  /** The operation the arguments ask for, or what is wrong with them. */
  private decide(a: ManageArgs): { error: string } | { unchanged: string } | { op: ManagerOp; id?: string } {
    if (a.action === 'create') {
      if (a.id !== undefined) return { error: 'create takes no id: it makes a new memory (update changes one)' };
      const kind = this.insertKind(a.kind);
      if ('error' in kind) return kind;
      if (!a.document) return { error: `create needs a document (a "${kind.name}" document)` };
      const doc = parseDocument(kind, a.document);
      if ('error' in doc) return doc;
      return { op: { op: 'insert', kind: kind.name, document: doc.document } };
    }
    if (a.id === undefined) return { error: `${a.action} needs the id of a memory (m1, m2...: see search_memory)` };
    const memory = this.ids.get(a.id);
    if (!memory && this.ids.isGone(a.id))
      return { error: `memory ${a.id} was deleted; search_memory finds the memories there are now` };
    if (!memory)
      return {
        error: `unknown id "${a.id}"; use an id from search_memory or from this conversation's calls (${this.ids.list() || 'none yet: search first'})`,
      };
    const kind = this.kinds.get(memory.kind);
    if (!kind) return { error: `memory ${a.id} is of kind "${memory.kind}", which these tools do not manage` };
    if (a.kind !== undefined && a.kind !== kind.name)
      return {
        error: `memory ${a.id} is of kind "${kind.name}", not "${a.kind}" (the kind of a memory does not change)`,
      };
    const target = {
      namespace: memory.namespace,
      key: memory.key,
      kind: memory.kind,
      version: memory.version,
      document: memory.value,
    };
    if (a.action === 'delete') {
      if (!canDelete(kind)) return { error: `"${kind.name}" memories cannot be deleted` };
      if (a.document !== undefined) return { error: 'delete takes no document, only the id' };
      return { op: { op: 'delete', target }, id: a.id };
    }
    if (!canUpdate(kind)) return { error: `"${kind.name}" memories cannot be updated` };
    if (!a.document) return { error: 'update needs the complete new document' };
    const doc = parseDocument(kind, a.document);
    if ('error' in doc) return doc;
    // The same document is no change: no write, no history row, no version.
    if (canonical(doc.document) === canonical(memory.value)) return { unchanged: a.id };
    return { op: { op: 'update', target, document: doc.document }, id: a.id };
  }

  private insertKind(name: string | undefined): CollectionKind | { error: string } {
    const insertable = [...this.kinds.values()].filter(canInsert);
    const names = insertable.map((k) => k.name).join(', ');
    if (name === undefined) {
      if (insertable.length === 1) return insertable[0] as CollectionKind;
      return { error: insertable.length ? `create needs a kind: one of ${names}` : 'no kind of memory may be created' };
    }
    const kind = this.kinds.get(name);
    if (!kind) return { error: `unknown kind "${name}"; the kinds are ${[...this.kinds.keys()].join(', ')}` };
    if (!canInsert(kind))
      return { error: `"${name}" memories cannot be created${names ? ` (these can: ${names})` : ''}` };
    return kind;
  }

  /** A memory as the model sees it: its short id, kind, document and when it last changed. */
  private shown(m: StoredMemory) {
    return { id: this.ids.add(m), ...card(m) };
  }
}

/** What the model is shown of a memory besides its id. */
const card = (m: StoredMemory) => ({
  kind: m.kind,
  document: m.value,
  updated: m.updatedAt.toISOString().slice(0, 10),
});

/** The text a tool result is sent back as: its JSON, or `{"error": ...}`. */
export function toolContent(outcome: ToolResult): string {
  return JSON.stringify(outcome.ok ? outcome.result : { error: outcome.error });
}
