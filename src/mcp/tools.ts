import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { storableText } from '../core/safe-text.js';
import { AuthError, ConflictError, InputError, UnavailableError } from '../errors.js';
import { messageSchema } from '../queue/schemas.js';
import { estimateTokens } from '../memory/recall-prompt.js';
import { AnswerBudget } from '../store/answer-budget.js';
import {
  earlierLeftOutNote,
  leftOutNote,
  SEARCH_TOOL,
  searchArgsSchema,
  tokenBudgetSchema,
  toolKinds,
} from '../tools/definitions.js';
import { toolContent, type ToolResult, type ToolSession } from '../tools/session.js';
import type { McpDeps, McpSessionConfig } from './server.js';

/**
 * The MCP tools: recall, search_memory, remember, forget, memory_history. Each takes a zod 4
 * schema (the SDK 1.x reads zod 4 as it is; docs/decisions.md): the SDK answers arguments that
 * fail it with a tool error naming the field, and everything past it goes through the tool
 * session's own checks (the same as manage_memory's), so the model can repair either.
 */
export const MCP_TOOLS = ['recall', SEARCH_TOOL, 'remember', 'forget', 'memory_history'] as const;

/** The latest changes memory_history reads of one memory, before its token budget. */
const HISTORY_ROWS = 1_000;

const id = z.string().min(1).max(64).describe('The id of a memory (m1, m2...) from recall or search_memory');

export function registerMcpTools(
  server: McpServer,
  deps: McpDeps & { session: ToolSession; config: McpSessionConfig },
): void {
  const { session, config, log } = deps;
  const kinds = toolKinds(deps.kinds).map((k) => k.name) as [string, ...string[]];
  /** A result as MCP sends it; a failure the caller cannot fix is logged, and named only vaguely. */
  const answer =
    <A>(run: (args: A) => Promise<ToolResult>) =>
    async (args: A): Promise<CallToolResult> => {
      let outcome: ToolResult;
      try {
        outcome = await run(args);
      } catch (err) {
        if (!isCallers(err)) log.error({ err }, 'MCP tool call failed');
        outcome = { ok: false, error: isCallers(err) ? err.message : 'internal error; try again later' };
      }
      return { content: [{ type: 'text', text: toolContent(outcome) }], ...(outcome.ok ? {} : { isError: true }) };
    };

  server.registerTool(
    'recall',
    {
      description:
        'What engram remembers that matters for a query: a prompt block of the user profiles and the most relevant memories, best first, each memory with its id for forget and memory_history.',
      inputSchema: z.strictObject({
        query: z.string().min(1).max(8_000).check(storableText).describe('What the conversation is about now'),
        limit: z.int().min(1).max(50).default(10).describe('Memories at most (profiles come on top)'),
        tokenBudget: tokenBudgetSchema('the prompt block'),
      }),
      annotations: { readOnlyHint: true },
    },
    answer(async ({ query, limit, tokenBudget }) => {
      // The prompt block alone, each memory's line carrying its id: the answer is then within
      // recall's own budget, where listing the memories again beside it took up to twice that.
      const r = await deps.recall.recall(
        { context: config.context, query, limit, tokenBudget },
        { memoryId: (m) => session.idOf(m) },
      );
      return {
        ok: true,
        result: {
          prompt: r.prompt,
          ...(r.leftOut && { leftOut: r.leftOut, note: leftOutNote(r.leftOut, tokenBudget, 'the prompt block') }),
        },
      };
    }),
  );

  server.registerTool(
    SEARCH_TOOL,
    {
      description:
        'Search the memories about the user, most relevant first; each has an id for forget and memory_history.',
      inputSchema: searchArgsSchema(deps.kinds),
      annotations: { readOnlyHint: true },
    },
    answer((args) => session.run(SEARCH_TOOL, args)),
  );

  server.registerTool(
    'remember',
    {
      description:
        "Give engram something to remember. `messages`: the conversation's new turns, from which engram forms memories in the background once the conversation pauses. `document`: one fact to store now (search first, so as not to store it twice).",
      inputSchema: z
        .strictObject({
          messages: z.array(messageSchema).min(1).max(100).optional().describe('New turns of this conversation'),
          document: z
            .record(z.string(), z.unknown())
            .optional()
            .describe(`A memory to store now, following its kind's schema (such as {"content": "User is vegetarian"})`),
          kind: z.enum(kinds).optional().describe('The kind of `document`, when there are several'),
        })
        .refine((a) => (a.messages === undefined) !== (a.document === undefined), 'give either messages or document'),
    },
    answer(async ({ messages, document, kind }) => {
      if (document) return session.manageAs('remember', { action: 'create', document, kind });
      const result = await deps.enqueue({
        threadId: config.threadId,
        context: config.context,
        messages: messages ?? [],
      });
      return { ok: true, result: { result: 'enqueued', accepted: result.accepted, duplicates: result.duplicates } };
    }),
  );

  server.registerTool(
    'forget',
    {
      description: 'Delete a memory that is no longer true, by its id.',
      inputSchema: z.strictObject({ id }),
      annotations: { destructiveHint: true },
    },
    answer(({ id }) => session.manageAs('forget', { action: 'delete', id })),
  );

  server.registerTool(
    'memory_history',
    {
      description:
        'How a memory changed: every version, oldest first, with who changed it and when; a forgotten memory keeps its history.',
      inputSchema: z.strictObject({ id, tokenBudget: tokenBudgetSchema('the changes', 'the earliest changes') }),
      annotations: { readOnlyHint: true },
    },
    answer(async ({ id, tokenBudget }) => {
      const memory = session.resolve(id);
      if (!memory)
        return { ok: false, error: `memory_history: unknown id "${id}"; use an id from recall or search_memory` };
      // The latest changes first, as many as fit, shown oldest first. Postgres sends at most
      // what the budget could hold (4 bytes a character at worst), whatever the documents' size.
      const read = await deps.memories.history(
        memory.namespace,
        memory.key,
        { limit: HISTORY_ROWS, offset: 0, newest: true },
        { budget: new AnswerBudget(tokenBudget * 16, '', true) },
      );
      let used = estimateTokens(JSON.stringify({ id, history: [] }));
      const shown: Record<string, unknown>[] = [];
      for (const e of read) {
        const change = {
          op: e.op,
          version: e.version,
          before: e.before,
          after: e.after,
          by: e.actor,
          at: e.at.toISOString(),
          // A temporal fact contradicted or forgotten: since when it no longer holds.
          ...(e.invalidAt && { invalidAt: e.invalidAt.toISOString() }),
        };
        const cost = estimateTokens(JSON.stringify(change)) + 1;
        if (used + cost > tokenBudget) break;
        used += cost;
        shown.unshift(change);
      }
      const leftOut = (await deps.memories.historyLength(memory.namespace, memory.key)) - shown.length;
      return {
        ok: true,
        result: { id, history: shown, ...(leftOut > 0 && { leftOut, note: earlierLeftOutNote(leftOut, tokenBudget) }) },
      };
    }),
  );
}

/** A failure its caller can act on: its message is for them. */
function isCallers(err: unknown): err is Error {
  return (
    err instanceof InputError ||
    err instanceof ConflictError ||
    err instanceof AuthError ||
    err instanceof UnavailableError
  );
}
