import type OpenAI from 'openai';
import { z } from 'zod';
import { RetryableError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { BufferedTurn } from '../queue/schemas.js';
import {
  buildMessages,
  buildTools,
  DELETE_TOOL,
  deleteArgsSchema,
  insertToolName,
  UPDATE_TOOL,
  updateArgsSchema,
  type AliasedMemory,
} from './extraction-prompt.js';
import type { MemoryKind } from './kinds.js';

export interface ExistingMemory {
  namespace: string[];
  key: string;
  kind: string;
  version: number;
  document: Record<string, unknown>;
}

export type ManagerOp =
  | { op: 'insert'; kind: string; document: Record<string, unknown> }
  | { op: 'update'; target: ExistingMemory; document: Record<string, unknown> }
  | { op: 'delete'; target: ExistingMemory };

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface ManagerResult {
  ops: ManagerOp[];
  usage: TokenUsage;
  /** Model calls made: 1, plus one per repair round. */
  calls: number;
}

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

/**
 * Turns plus existing memories in, operations out; no side effects (LangMem's memory manager).
 * Model output is untrusted (invariant 7): every call is parsed and validated; bad calls go back
 * to the model in a bounded repair round, and then the whole extraction fails cleanly.
 */
export class MemoryManager {
  constructor(
    private readonly client: OpenAI,
    private readonly model: string,
    private readonly log: Logger,
    private readonly maxRepairRounds = 2,
  ) {}

  async extract(input: {
    kinds: MemoryKind[];
    existing: ExistingMemory[];
    earlier: BufferedTurn[];
    turns: BufferedTurn[];
    signal?: AbortSignal | undefined;
  }): Promise<ManagerResult> {
    const byAlias = new Map(input.existing.map((m, i) => [`m${i + 1}`, m]));
    const aliased: AliasedMemory[] = [...byAlias].map(([alias, m]) => ({ alias, kind: m.kind, document: m.document }));
    const kinds = new Map(input.kinds.map((k) => [k.name, k]));
    const messages: ChatMessage[] = buildMessages({ kinds: input.kinds, existing: aliased, earlier: input.earlier, turns: input.turns });
    const tools = buildTools(input.kinds);
    const usage: TokenUsage = { promptTokens: 0, completionTokens: 0 };
    const accepted: ManagerOp[] = [];
    const touched = new Set<ExistingMemory>();

    for (let round = 0; ; round++) {
      const res = await this.client.chat.completions
        .create(
          { model: this.model, messages, tools, tool_choice: 'auto', parallel_tool_calls: true, temperature: 0 },
          { signal: input.signal },
        )
        .catch((err: unknown) => {
          throw new RetryableError(`chat model request failed: ${(err as Error).message}`, { cause: err });
        });
      usage.promptTokens += res.usage?.prompt_tokens ?? 0;
      usage.completionTokens += res.usage?.completion_tokens ?? 0;
      const message = res.choices[0]?.message;
      if (!message) throw new RetryableError('chat model returned no choice');
      const calls = (message.tool_calls ?? []).filter((c) => c.type === 'function');

      const errors: { id: string; error: string }[] = [];
      const results: { id: string; content: string }[] = [];
      for (const call of calls) {
        const outcome = this.validate(call.function.name, call.function.arguments, kinds, byAlias, touched);
        if ('error' in outcome) {
          errors.push({ id: call.id, error: outcome.error });
          results.push({ id: call.id, content: `error: ${outcome.error}` });
        } else {
          accepted.push(outcome.op);
          if (outcome.op.op !== 'insert') touched.add(outcome.op.target);
          results.push({ id: call.id, content: 'accepted' });
        }
      }
      if (errors.length === 0) return { ops: accepted, usage, calls: round + 1 };

      this.log.warn({ round, errors }, 'model output rejected');
      if (round >= this.maxRepairRounds) {
        throw new RetryableError(
          `model output still invalid after ${this.maxRepairRounds} repair round(s): ${errors.map((e) => e.error).join('; ')}`,
        );
      }
      // Show the model which calls failed and why; accepted ones are kept and must not be repeated.
      messages.push({ role: 'assistant', content: message.content ?? null, tool_calls: calls });
      for (const r of results) messages.push({ role: 'tool', tool_call_id: r.id, content: r.content });
      messages.push({
        role: 'user',
        content: 'Some tool calls were rejected (see the errors). Accepted calls are kept: send corrected calls only for the rejected ones.',
      });
    }
  }

  private validate(
    name: string,
    rawArgs: string,
    kinds: Map<string, MemoryKind>,
    byAlias: Map<string, ExistingMemory>,
    touched: Set<ExistingMemory>,
  ): { op: ManagerOp } | { error: string } {
    let args: unknown;
    try {
      args = JSON.parse(rawArgs);
    } catch {
      return { error: `${name}: arguments are not valid JSON` };
    }
    const target = (id: string): { memory: ExistingMemory } | { error: string } => {
      const memory = byAlias.get(id);
      if (!memory) return { error: `${name}: unknown id "${id}"; use an id from existing_memories (${[...byAlias.keys()].join(', ') || 'none'})` };
      if (touched.has(memory)) return { error: `${name}: memory "${id}" was already changed in this answer` };
      return { memory };
    };
    if (name === UPDATE_TOOL || name === DELETE_TOOL) {
      const parsed = (name === UPDATE_TOOL ? updateArgsSchema : deleteArgsSchema).safeParse(args);
      if (!parsed.success) return { error: `${name}: ${z.prettifyError(parsed.error)}` };
      const found = target(parsed.data.id);
      if ('error' in found) return found;
      const kind = kinds.get(found.memory.kind);
      if (!kind) return { error: `${name}: memory "${parsed.data.id}" is of kind "${found.memory.kind}", which this reflection does not handle` };
      if (name === DELETE_TOOL) {
        if (!kind.enableDeletes) return { error: `${name}: "${kind.name}" memories cannot be deleted` };
        return { op: { op: 'delete', target: found.memory } };
      }
      if (!kind.enableUpdates) return { error: `${name}: "${kind.name}" memories cannot be updated` };
      const doc = kind.schema.safeParse((parsed.data as unknown as { document: unknown }).document);
      if (!doc.success) return { error: `${name}: document does not match the "${kind.name}" schema: ${z.prettifyError(doc.error)}` };
      return { op: { op: 'update', target: found.memory, document: doc.data } };
    }
    const kind = [...kinds.values()].find((k) => insertToolName(k.name) === name && k.enableInserts);
    if (!kind) return { error: `unknown tool "${name}"` };
    const doc = kind.schema.safeParse(args);
    if (!doc.success) return { error: `${name}: document does not match the "${kind.name}" schema: ${z.prettifyError(doc.error)}` };
    return { op: { op: 'insert', kind: kind.name, document: doc.data } };
  }
}
