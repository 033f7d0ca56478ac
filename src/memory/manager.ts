import type OpenAI from 'openai';
import { ModelOutputError, PermanentError, RetryableError } from '../errors.js';
import { assertFinished, OpenAIChatModel, type ChatMessage, type ChatModel, type ChatTool } from '../llm/chat-model.js';
import { defaultRetryPolicy, type RetryPolicy } from '../llm/retry.js';
import { createLogger } from '../observability/logger.js';
import { addUsage, noUsage, type TokenUsage } from '../observability/usage.js';
import type { Logger } from '../observability/logger.js';
import {
  buildMessages,
  buildTools,
  REPAIR_INSTRUCTION,
  type AliasedMemory,
  type ConversationTurn,
} from './extraction-prompt.js';
import { listProblems, MAX_CALLS_PER_ANSWER, readCalls, repairMessages } from './answer-calls.js';
import { canMerge, type MemoryKind } from './kinds.js';
import { buildMergeMessages } from './merge-prompt.js';
import { ToolCallChecker, type ExistingMemory, type ManagerOp } from './tool-calls.js';

export type { ExistingMemory, ManagerOp } from './tool-calls.js';
export type { TokenUsage } from '../observability/usage.js';

export interface ManagerResult {
  ops: ManagerOp[];
  usage: TokenUsage;
  /** Model calls made: 1, plus one per repair round. */
  calls: number;
}

export interface MergeInput {
  kind: MemoryKind;
  /** Memories of `kind` that may overlap, a few per group; every memory in at most one group. */
  groups: ExistingMemory[][];
  signal?: AbortSignal | undefined;
  onUsage?: (usage: TokenUsage) => void;
}

export interface ExtractInput {
  kinds: MemoryKind[];
  /** Memories the model may update or delete (collections), and the current profiles. */
  existing: ExistingMemory[];
  earlier?: ConversationTurn[];
  turns: ConversationTurn[];
  signal?: AbortSignal | undefined;
  /** Called after every model call, including calls of an extraction that fails later. */
  onUsage?: (usage: TokenUsage) => void;
  /** The caller's logger, for the model's retry warnings and rejected answers (a reflection's carries its thread and job). */
  log?: Logger | undefined;
}

/**
 * Turns plus existing memories in, operations out, and no side effects: LangMem's memory
 * manager, usable on its own. The model sees memories under aliases (m1, m2...), gets one tool
 * per kind plus update and delete, and may answer with all its calls at once. Every call is
 * checked; rejected ones go back to the model with the reason in a bounded number of repair
 * rounds, after which the extraction fails as a whole (no partial result, invariant 7).
 */
export class MemoryManager {
  constructor(
    private readonly chat: ChatModel,
    private readonly log: Logger,
    private readonly maxRepairRounds = 2,
  ) {}

  get model(): string {
    return this.chat.model;
  }

  async extract(input: ExtractInput): Promise<ManagerResult> {
    const profileKinds = new Set(input.kinds.filter((k) => k.mode === 'profile').map((k) => k.name));
    const collection = input.existing.filter((m) => !profileKinds.has(m.kind));
    const profileDocs = input.existing.filter((m) => profileKinds.has(m.kind));
    const byAlias = new Map(collection.map((m, i) => [`m${i + 1}`, m]));
    const aliased: AliasedMemory[] = [...byAlias].map(([alias, m]) => ({ alias, kind: m.kind, document: m.document }));
    const profiles = Object.fromEntries(
      [...profileKinds].map((name) => [name, profileDocs.find((p) => p.kind === name)?.document ?? null]),
    );

    const messages: ChatMessage[] = buildMessages({
      kinds: input.kinds,
      existing: aliased,
      profiles,
      earlier: input.earlier ?? [],
      turns: input.turns,
    });
    // Worth retrying: the job's next attempt may read more turns, and a sampled model may do better.
    return this.decide(
      messages,
      buildTools(input.kinds, { saidInTurn: true }),
      new ToolCallChecker(input.kinds, byAlias, profileDocs, input.turns.length),
      input,
      (message) => new RetryableError(message),
    );
  }

  /**
   * Consolidation: groups of memories of one kind that may say the same thing (near each other
   * in vector space) in, updates and deletes out. Nothing can be inserted: a merge rewrites one
   * memory of a group and deletes the others. One kind per call, so that the update tool carries
   * that kind's schema (with several, it would name insert tools this call does not have).
   */
  async merge(input: MergeInput): Promise<ManagerResult> {
    if (!canMerge(input.kind))
      throw new PermanentError(
        `memory kind "${input.kind.name}" cannot be merged: it needs updates and deletes enabled`,
      );
    const kinds = [{ ...input.kind, enableInserts: false }];
    const byAlias = new Map<string, ExistingMemory>();
    const groups = input.groups.map((group) =>
      group.map((m) => {
        const alias = `m${byAlias.size + 1}`;
        byAlias.set(alias, m);
        return { alias, kind: m.kind, document: m.document };
      }),
    );
    // Not worth retrying: a merge's input is the same at the next pass, and so would the answer be.
    return this.decide(
      buildMergeMessages(kinds, groups),
      buildTools(kinds),
      new ToolCallChecker(kinds, byAlias, [], 0, input.groups),
      input,
      (message) => new ModelOutputError('invalid', message),
    );
  }

  /** Asks, checks every call, and sends rejected ones back for a bounded number of repair rounds. */
  private async decide(
    messages: ChatMessage[],
    tools: ChatTool[],
    checker: ToolCallChecker,
    input: Pick<ExtractInput, 'signal' | 'onUsage' | 'log'>,
    invalid: (message: string) => Error,
  ): Promise<ManagerResult> {
    const usage = noUsage();
    // No kind may change anything (switches all off, or no kind left for these turns): nothing
    // to ask, and an empty tools list is a 400 on OpenAI.
    if (tools.length === 0) return { ops: [], usage, calls: 0 };

    for (let round = 0; ; round++) {
      const answer = await this.chat.complete(
        { messages, tools, tool_choice: 'auto', parallel_tool_calls: true, temperature: 0 },
        { signal: input.signal, log: input.log },
      );
      addUsage(usage, answer.usage);
      input.onUsage?.(answer.usage);
      assertFinished(answer, this.chat.model);
      const read = readCalls(answer.message.tool_calls);
      const made = read.calls.length + read.unreadable.length;
      // Refused whole, unchecked: checking and answering thousands of calls would make the
      // repair request, the failure and the commit as large as the answer.
      const outcomes =
        made > MAX_CALLS_PER_ANSWER
          ? ('too-many' as const)
          : checker.checkAnswer(read.calls).map((o, i) => ({ id: read.calls[i]?.id ?? '', ...o }));
      const errors =
        outcomes === 'too-many'
          ? [`the answer made ${made} tool calls, more than the ${MAX_CALLS_PER_ANSWER} allowed in one answer`]
          : [...read.unreadable, ...outcomes.flatMap((o) => ('error' in o ? [o.error] : []))];
      if (errors.length === 0) return { ops: checker.ops(), usage, calls: round + 1 };

      // The caller's logger: a reflection's carries its thread and job, as the retries' lines do.
      (input.log ?? this.log).warn(
        { round, errors: listProblems(errors), problems: errors.length, finishReason: answer.finishReason },
        'model output rejected',
      );
      if (round >= this.maxRepairRounds) {
        throw invalid(
          `model output still invalid after ${this.maxRepairRounds} repair round(s): ${listProblems(errors)}`,
        );
      }
      messages.push(...repairMessages(answer.message.content ?? null, read, outcomes, REPAIR_INSTRUCTION));
    }
  }
}

/**
 * A manager on its own, from an `openai` client (LangMem's `create_memory_manager`): no store,
 * no queue. Each request is sent with `maxRetries: 0` whatever the client says; retries follow
 * `retry`, and the client's `timeout` bounds each attempt, its answer's body included.
 */
export function createMemoryManager(opts: {
  client: OpenAI;
  model: string;
  log?: Logger;
  retry?: RetryPolicy;
  maxRepairRounds?: number;
}): MemoryManager {
  const log = opts.log ?? createLogger({ level: 'silent' });
  return new MemoryManager(
    new OpenAIChatModel(opts.client, opts.model, log, opts.retry ?? defaultRetryPolicy),
    log,
    opts.maxRepairRounds,
  );
}
