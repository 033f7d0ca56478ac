import { z } from 'zod';
import { RetryableError } from '../errors.js';

/**
 * The shapes of the model endpoints' answers, checked where they enter (invariant 7: model
 * output is untrusted input). The SDK's types are a promise the server may not keep: a 200 whose
 * body is an error object, or an event stream, came out as TypeErrors far from here, or as "no
 * choice" with the provider's own message lost.
 */

/** How much of a provider's message, or of a body that is not JSON, an error quotes. */
const QUOTE_CHARS = 300;

/** What a request's answer came with: its parsed body (a string when not JSON) and its type. */
export interface RawAnswer {
  body: unknown;
  contentType: string | null;
}

/** Token counts are accounting, not the answer: a server that garbles them costs no job. */
const usage = z
  .object({
    prompt_tokens: z.number().nonnegative().optional(),
    completion_tokens: z.number().nonnegative().optional(),
  })
  .loose()
  .nullish()
  .catch(null);

/**
 * A tool call is an object; what it holds is its reader's to judge (memory/answer-calls.ts):
 * one the manager cannot read as a function call is named to the model in a repair round, a
 * cheaper and clearer way out than failing the whole request here and asking it again.
 */
const toolCall = z.object({}).loose();

export const chatCompletionAnswer = z
  .object({
    choices: z
      .array(
        z
          .object({
            message: z.object({ content: z.string().nullish(), tool_calls: z.array(toolCall).nullish() }).loose(),
            finish_reason: z.string().nullish(),
          })
          .loose(),
      )
      .min(1, 'no choice'),
    usage,
  })
  .loose();

/**
 * A 4-byte float, as pgvector stores each element: a larger double (1e300) reached Postgres as
 * infinity and failed the commit with "infinite value not allowed in vector".
 */
const float4 = z.number().refine((x) => Number.isFinite(Math.fround(x)), 'is out of the range of a 4-byte float');

/** One vector's elements; its length is checked apart (a wrong one is a setting, not a bad answer). */
export const embeddingVector = z.array(float4);

export const embeddingsAnswer = z
  .object({
    data: z.array(z.object({ index: z.number().int().nonnegative(), embedding: z.unknown() }).loose()),
    usage,
  })
  .loose();

/**
 * The answer a 200 brought that is not of its shape, as a RetryableError naming the model and
 * where it was asked (`where`), and saying what came instead: the provider's own message when
 * the body is an error object (`{"error": {"message": ...}}`), the body's type and start when it
 * is not JSON (an event stream from a server that ignores `stream: false`), else the first
 * thing wrong. Retryable: a server's bad moment passes; one that always answers so fails every
 * attempt, visibly, with this message.
 */
export function malformedAnswer(
  where: string,
  expected: string,
  answer: RawAnswer,
  error?: z.ZodError,
): RetryableError {
  const { body, contentType } = answer;
  const provider = providerMessage(body);
  let what: string;
  if (provider !== undefined) what = `an error instead of ${expected}: ${JSON.stringify(quote(provider))}`;
  else if (body === undefined || body === null || body === '') what = `an empty body instead of ${expected}`;
  else if (typeof body === 'string')
    what = `a ${contentType ?? 'untyped'} body that is not JSON: ${JSON.stringify(quote(body))}`;
  else what = `a body that is not ${expected}: ${error ? firstIssue(error) : 'unexpected shape'}`;
  return new RetryableError(`${where}: answered 200 with ${what}`);
}

/** The provider's message in an error body: `{"error": {"message": "..."}}`, or `{"error": "..."}`. */
function providerMessage(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || !('error' in body)) return undefined;
  const error = body.error;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null && 'message' in error && typeof error.message === 'string')
    return error.message;
  return undefined;
}

function quote(text: string): string {
  return text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}... (${text.length} characters)` : text;
}

/** The first issue, where it is: `choices: no choice`, `data.0.embedding.3: ...`. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'unexpected shape';
  const path = issue.path.map(String).join('.');
  return quote(path ? `${path}: ${issue.message}` : issue.message);
}
