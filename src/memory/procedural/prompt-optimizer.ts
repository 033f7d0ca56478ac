import { z } from 'zod';
import { InputError, RetryableError } from '../../errors.js';
import { assertFinished, type ChatMessage, type ChatModel } from '../../llm/chat-model.js';
import { clipProblem, MAX_CALLS_PER_ANSWER, readCalls, repairMessages } from '../answer-calls.js';
import { addUsage, noUsage, type TokenUsage, type UsageSink } from '../../observability/usage.js';
import type { Logger } from '../../observability/logger.js';
import type { MemoryDb } from '../../store/memory-db.js';
import type { ChangeSet } from '../../store/change-set.js';
import { namespaceSchema, type MemoryItem } from '../../store/types.js';
import {
  optimizerMessages,
  optimizerTool,
  placeholders,
  PROPOSE_TOOL,
  proposalSchema,
  sessionSchema,
  type Proposal,
} from './optimizer-prompt.js';

/** The kind under which prompts are stored; their history rows are the prompt's versions. */
export const PROMPT_KIND = 'prompt';

export const optimizeInputSchema = z.strictObject({
  /** Where the prompt lives, such as ["prompts", "support-agent"]. */
  namespace: namespaceSchema,
  /** The prompt's key in the namespace. */
  name: z.string().min(1).max(128),
  /** The starting prompt, used when none is stored yet (ignored once one is). */
  prompt: z.string().min(1).max(20_000).optional(),
  sessions: z.array(sessionSchema).min(1).max(50),
  /** Idempotency key: a run retried with the same id applies its change once. */
  runId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/),
});
export type OptimizeInput = z.input<typeof optimizeInputSchema>;

export interface OptimizeResult {
  status: 'updated' | 'unchanged' | 'already-applied';
  /** The stored prompt's version after this run (0: nothing stored). */
  version: number;
  prompt: string | null;
  analysis: string | null;
  usage: TokenUsage;
}

export interface PromptVersion {
  version: number;
  prompt: string;
  analysis: string | null;
  actor: string;
  at: Date;
}

/**
 * Procedural memory: the prompt optimizer of the seeds. Given a prompt and conversations with
 * feedback, one model call proposes an improved prompt, stored as a versioned memory (kind
 * `prompt`) through the store's change-set writer: a compare-and-set on the prompt (two runs at
 * once cannot overwrite each other), a history row per version, and the run id as the change's
 * idempotency key, so a retried run changes nothing twice. A library call, not a job: optimizing a
 * prompt is an operator's or an evaluation pipeline's act, run when they choose.
 */
export class PromptOptimizer {
  constructor(
    private readonly store: MemoryDb,
    private readonly chat: ChatModel,
    private readonly log: Logger,
    private readonly usageSink?: UsageSink,
    private readonly limits = { maxRepairRounds: 2, maxRestarts: 3 },
  ) {}

  async optimize(raw: OptimizeInput, opts: { signal?: AbortSignal } = {}): Promise<OptimizeResult> {
    const parsed = optimizeInputSchema.safeParse(raw);
    if (!parsed.success)
      throw new InputError(`invalid optimize request: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
    const input = parsed.data;
    const key = `prompt-optimizer:${input.runId}`;
    const actor = key;
    const usage = noUsage();

    for (let restarts = 0; ; restarts++) {
      const current = await this.store.get(input.namespace, input.name);
      if (await this.store.isApplied(key)) return this.done('already-applied', current, null, usage);
      const base = (current?.value.prompt as string | undefined) ?? input.prompt;
      if (!base)
        throw new InputError(
          `no prompt "${input.name}" is stored in ${JSON.stringify(input.namespace)}: pass \`prompt\` to start from`,
        );

      const proposal = await this.propose(base, input.sessions, opts.signal, (u) => {
        addUsage(usage, u);
        this.usageSink?.record({
          actor,
          namespaces: [input.namespace],
          purpose: 'optimize-prompt',
          model: this.chat.model,
          ...u,
        });
      });
      const changed = proposal.prompt !== base || !current;
      const applied = await this.store.apply(
        promptChange(key, { namespace: input.namespace, key: input.name }, current, proposal, changed),
      );
      if (applied.status === 'duplicate')
        return this.done('already-applied', await this.store.get(input.namespace, input.name), null, usage);
      if (applied.status === 'conflict') {
        if (restarts >= this.limits.maxRestarts)
          throw new RetryableError(`prompt "${input.name}" kept changing under the optimizer (${restarts + 1} tries)`);
        continue;
      }
      const stored = await this.store.get(input.namespace, input.name);
      this.log.info(
        // `prompt`, not `name`: pino's own `name` (engram) is on every line, and a second one
        // hides these lines from a filter on it.
        { namespace: input.namespace, prompt: input.name, changed, version: stored?.version, usage },
        'prompt optimized',
      );
      return this.done(changed ? 'updated' : 'unchanged', stored, proposal.analysis, usage);
    }
  }

  /** Every stored version of a prompt, oldest first, from its history rows. */
  async versions(namespace: string[], name: string): Promise<PromptVersion[]> {
    const rows = await this.store.history(namespace, name);
    return rows
      .filter((r) => r.after)
      .map((r) => ({
        version: r.version,
        prompt: r.after?.prompt as string,
        analysis: (r.after?.analysis as string | undefined) ?? null,
        actor: r.actor,
        at: r.at,
      }));
  }

  private async propose(
    base: string,
    sessions: OptimizeInput['sessions'],
    signal: AbortSignal | undefined,
    onUsage: (u: TokenUsage) => void,
  ): Promise<Proposal> {
    const messages: ChatMessage[] = optimizerMessages(base, sessions);
    const tools = [optimizerTool()];
    const required = placeholders(base);
    for (let round = 0; ; round++) {
      const answer = await this.chat.complete(
        { messages, tools, tool_choice: { type: 'function', function: { name: PROPOSE_TOOL } }, temperature: 0 },
        { signal },
      );
      onUsage(answer.usage);
      assertFinished(answer, this.chat.model);
      // Read by shape: a server that leaves out `type` still answers with a function call.
      const read = readCalls(answer.message.tool_calls);
      const call = read.calls.find((c) => c.name === PROPOSE_TOOL);
      const checked = call ? check(call.arguments, required) : { error: `call ${PROPOSE_TOOL} once` };
      if ('proposal' in checked) return checked.proposal;
      if (round >= this.limits.maxRepairRounds)
        throw new RetryableError(
          `prompt proposal still invalid after ${round} repair round(s): ${clipProblem(checked.error)}`,
        );
      // An answer of thousands of calls is not echoed call by call: the repair request stays bounded.
      const tooMany = read.calls.length + read.unreadable.length > MAX_CALLS_PER_ANSWER;
      messages.push(
        ...repairMessages(
          answer.message.content ?? null,
          read,
          tooMany
            ? 'too-many'
            : read.calls.map((c) => (c === call ? { id: c.id, error: checked.error } : { id: c.id, note: 'ignored' })),
          `Your proposal was rejected: ${clipProblem(checked.error)}. Call ${PROPOSE_TOOL} again with a corrected proposal.`,
        ),
      );
    }
  }

  private done(
    status: OptimizeResult['status'],
    stored: { version: number; value: Record<string, unknown> } | null,
    analysis: string | null,
    usage: TokenUsage,
  ): OptimizeResult {
    return {
      status,
      version: stored?.version ?? 0,
      prompt: (stored?.value.prompt as string | undefined) ?? null,
      analysis: analysis ?? (stored?.value.analysis as string | undefined) ?? null,
      usage,
    };
  }
}

function check(rawArgs: string, required: string[]): { proposal: Proposal } | { error: string } {
  let args: unknown;
  try {
    args = JSON.parse(rawArgs);
  } catch {
    return { error: 'the arguments are not valid JSON' };
  }
  const parsed = proposalSchema.safeParse(args);
  if (!parsed.success) return { error: z.prettifyError(parsed.error) };
  const lost = required.filter((p) => !parsed.data.prompt.includes(p));
  if (lost.length) return { error: `the prompt must keep the placeholders ${lost.join(', ')}` };
  return { proposal: parsed.data };
}

/**
 * A run's change, decided on the prompt as read: a write to it since is a conflict, whether the
 * run rewrites it (compare-and-set) or leaves it as it is (a guard). The run id is its once-key.
 */
function promptChange(
  key: string,
  ref: { namespace: string[]; key: string },
  current: MemoryItem | null,
  proposal: { prompt: string; analysis: string },
  changed: boolean,
): ChangeSet {
  const value = { prompt: proposal.prompt, analysis: proposal.analysis };
  return {
    actor: key,
    once: { key },
    writes: changed
      ? [{ op: 'put', ...ref, kind: PROMPT_KIND, value, fields: [], ttl: null, ifVersion: current?.version ?? 0 }]
      : [],
    guards: changed || !current ? [] : [{ ...ref, version: current.version }],
  };
}
