import type { ChatMessage } from '../llm/chat-model.js';
import { clipText } from '../core/safe-text.js';

/**
 * A model's answer read as tool calls, and the bounds on what it makes engram do and say back.
 * The answer is untrusted input (invariant 7) from any OpenAI-compatible server: its calls are
 * read by their shape, not by the SDK's types, and whatever cannot be read as a function call is
 * a problem the model is told about, never a call silently left out.
 */

/**
 * Tool calls one answer may make. Above the largest merge (20 groups of 8 memories: 160 calls),
 * and three answers of it (one and two repair rounds) stay under BATCH_MAX_OPS (1,000), so a
 * reflection is undone in one revert. An answer with more is refused whole.
 */
export const MAX_CALLS_PER_ANSWER = 200;
/** One problem's text, as sent back to the model or logged, at most (an alias list can be long). */
export const MAX_PROBLEM_CHARS = 500;
/** Problems named in a failure's message; the others are counted. */
export const MAX_PROBLEMS_LISTED = 10;

export interface FunctionCall {
  id: string;
  name: string;
  arguments: string;
}

export interface AnswerCalls {
  calls: FunctionCall[];
  /** Calls that are no function call: what is wrong with each, for the model to be told. */
  unreadable: string[];
}

/**
 * The function calls of an answer. A call with a `function` object and no `type` is a function
 * call (some OpenAI-compatible servers leave `type` out); one of another type, or without a
 * function name and arguments, is unreadable. Missing ids are made up, for the repair round to
 * answer each call.
 */
export function readCalls(toolCalls: unknown): AnswerCalls {
  const out: AnswerCalls = { calls: [], unreadable: [] };
  if (toolCalls === undefined || toolCalls === null) return out;
  if (!Array.isArray(toolCalls)) {
    out.unreadable.push('tool_calls is not a list of tool calls');
    return out;
  }
  for (const [i, raw] of (toolCalls as unknown[]).entries()) {
    const call = (raw ?? {}) as { id?: unknown; type?: unknown; function?: unknown };
    const id = typeof call.id === 'string' && call.id ? call.id : `call_${i + 1}`;
    const fn = (call.function ?? {}) as { name?: unknown; arguments?: unknown };
    if (call.type !== undefined && call.type !== 'function') {
      const type = typeof call.type === 'string' ? JSON.stringify(clipProblem(call.type)) : `(a ${typeof call.type})`;
      out.unreadable.push(`tool call ${id} is of type ${type}: call the tools given, as functions`);
    } else if (typeof call.function !== 'object' || typeof fn.name !== 'string' || !fn.name)
      out.unreadable.push(`tool call ${id} names no function: call the tools given, as functions`);
    else if (typeof fn.arguments !== 'string')
      out.unreadable.push(`tool call ${id} (${clipProblem(fn.name)}): its arguments are not a JSON string`);
    else out.calls.push({ id, name: fn.name, arguments: fn.arguments });
  }
  return out;
}

export function clipProblem(problem: string): string {
  return problem.length > MAX_PROBLEM_CHARS ? `${clipText(problem, MAX_PROBLEM_CHARS)}…` : problem;
}

/** The first problems, and how many were left out: a failure's message and log line stay short. */
export function listProblems(problems: string[]): string {
  const listed = problems.slice(0, MAX_PROBLEMS_LISTED).map(clipProblem).join('; ');
  const left = problems.length - MAX_PROBLEMS_LISTED;
  return left > 0 ? `${listed}; and ${left} more problem(s) left out` : listed;
}

/**
 * What goes back to the model in a repair round: its answer (the calls engram read), each call's
 * outcome, and the instruction. Unreadable calls are not repeated (a server may refuse them in a
 * request) but named in the instruction. An answer over MAX_CALLS_PER_ANSWER is not repeated at
 * all: that is what keeps a repair request bounded.
 */
export function repairMessages(
  content: string | null,
  read: AnswerCalls,
  /** Per call read: its error, or a note (`accepted` when neither is given). */
  outcomes: { id: string; error?: string; note?: string }[] | 'too-many',
  instruction: string,
): ChatMessage[] {
  const made = read.calls.length + read.unreadable.length;
  if (outcomes === 'too-many')
    return [
      { role: 'assistant', content: `(an answer of ${made} tool calls, not repeated here)` },
      {
        role: 'user',
        content: `Your answer made ${made} tool calls; at most ${MAX_CALLS_PER_ANSWER} are allowed in one answer, and none of them was kept. Answer again with at most ${MAX_CALLS_PER_ANSWER} calls.`,
      },
    ];
  const tail = read.unreadable.length ? ` These tool calls were not understood: ${listProblems(read.unreadable)}.` : '';
  return [
    read.calls.length
      ? {
          role: 'assistant',
          content,
          tool_calls: read.calls.map((c) => ({
            id: c.id,
            type: 'function' as const,
            function: { name: c.name, arguments: c.arguments },
          })),
        }
      : {
          role: 'assistant',
          content: content ?? (read.unreadable.length ? '(tool calls not understood)' : '(no tool call)'),
        },
    ...outcomes.map((o): ChatMessage => ({
      role: 'tool',
      tool_call_id: o.id,
      content: o.error === undefined ? (o.note ?? 'accepted') : `error: ${clipProblem(o.error)}`,
    })),
    { role: 'user', content: instruction + tail },
  ];
}
