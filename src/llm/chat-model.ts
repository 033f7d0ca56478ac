import type OpenAI from 'openai';
import { ModelOutputError } from '../errors.js';
import { chatCompletionAnswer, malformedAnswer } from './answers.js';
import type { Logger } from '../observability/logger.js';
import { defaultRetryPolicy, withRetry, type RetryPolicy } from './retry.js';
import type { TokenUsage } from '../observability/usage.js';

export type ChatBody = Omit<OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming, 'model'>;
export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
export type ChatTool = OpenAI.Chat.Completions.ChatCompletionFunctionTool;

export interface ChatAnswer {
  message: OpenAI.Chat.Completions.ChatCompletionMessage;
  finishReason: string;
  usage: TokenUsage;
}

/** One chat completion, retried and abortable. Swappable (tests, other SDKs, a cache). */
export interface ChatModel {
  readonly model: string;
  complete(body: ChatBody, opts?: ChatOptions): Promise<ChatAnswer>;
}

export interface ChatOptions {
  signal?: AbortSignal | undefined;
  /**
   * The caller's logger (a reflection's, with its threadId and jobId): the request's retry
   * warnings go there, so that following a thread finds them. The model's own when omitted.
   */
  log?: Logger | undefined;
}

/**
 * Chat completions through the `openai` SDK, against any OpenAI-compatible base URL. The
 * AbortSignal goes into the SDK request (it aborts the HTTP call) and into the retry waits.
 * Retries happen here (see retry.ts), never in the SDK; the client's `timeout` bounds each
 * attempt as a whole, its answer's body included.
 */
export class OpenAIChatModel implements ChatModel {
  constructor(
    private readonly client: OpenAI,
    readonly model: string,
    private readonly log: Logger,
    private readonly retry: RetryPolicy = defaultRetryPolicy,
  ) {}

  async complete(body: ChatBody, opts: ChatOptions = {}): Promise<ChatAnswer> {
    const res = await withRetry(
      {
        what: `chat model ${this.model}`,
        dependency: 'chat-model',
        baseURL: this.client.baseURL,
        timeoutMs: this.client.timeout,
      },
      // maxRetries 0 whatever the client says: the attempt's bound is one request's, and a
      // client built with the SDK's default (2) would retry inside each of ours.
      (signal) =>
        this.client.chat.completions.create({ model: this.model, ...body }, { signal, maxRetries: 0 }).withResponse(),
      this.retry,
      opts.signal,
      ({ attempt, delayMs, err }) =>
        (opts.log ?? this.log).warn(
          { model: this.model, attempt, delayMs: Math.round(delayMs), err: (err as Error).message },
          'chat request failed, retrying',
        ),
    );
    // The SDK's types are not checked against the body: a string (not JSON), an error object or
    // a call without its function would pass as a completion (see answers.ts).
    const answer: unknown = res.data;
    const parsed = chatCompletionAnswer.safeParse(answer);
    if (!parsed.success) {
      throw malformedAnswer(
        `chat model ${this.model} at ${this.client.baseURL}`,
        'a chat completion',
        { body: answer, contentType: res.response.headers.get('content-type') },
        parsed.error,
      );
    }
    const [choice] = res.data.choices as [OpenAI.Chat.Completions.ChatCompletion.Choice];
    const { usage } = parsed.data;
    return {
      message: choice.message,
      finishReason: choice.finish_reason ?? '',
      usage: { promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 },
    };
  }
}

/**
 * Refuses an answer the model did not finish: cut off at its output limit (`length`) or stopped
 * by a content filter. Read as it is, its calls before the cut would pass for the whole answer
 * and the turns would be marked reflected with the rest of their facts dropped. Permanent: the
 * same prompt at temperature 0 ends the same way, so retries would only spend tokens; the job
 * fails with its turns kept, to be retried once the model's limits are raised.
 */
export function assertFinished(answer: ChatAnswer, model: string): void {
  if (answer.finishReason === 'length') {
    throw new ModelOutputError(
      'length',
      `chat model ${model} stopped at its output limit (finish_reason "length"): raise the output limit of the model's server`,
    );
  }
  if (answer.finishReason === 'content_filter') {
    throw new ModelOutputError(
      'content-filter',
      `chat model ${model} withheld its answer (finish_reason "content_filter")`,
    );
  }
}
