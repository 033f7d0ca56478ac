import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fakeEmbedding } from './embedding.js';

/**
 * What a test's chat handler answers: tool calls, plain text, an HTTP error (with headers
 * such as retry-after-ms), or a 200 whose body is `rawBody` as it is (not JSON, say, as a proxy's
 * page), of `contentType` (JSON's by default). `stalledBody` sends the headers and this start of
 * a body, then a space every 100 ms and never the rest (a server that stalls mid-answer).
 * `delayMs` holds the answer back (a slow or hung model); `finishReason` overrides the one the
 * server would send (a cut-off or filtered answer).
 */
export type ChatReply = (
  | { toolCalls: { name: string; arguments: unknown }[]; content?: string }
  | { content: string }
  | { status: number; error: string; code?: string; headers?: Record<string, string> }
  | { rawBody: string; contentType?: string }
  | { stalledBody: string }
) & { delayMs?: number; finishReason?: string };

export interface ChatRequest {
  model: string;
  messages: { role: string; content: string | null; tool_calls?: unknown[]; tool_call_id?: string }[];
  tools?: { type: string; function: { name: string; parameters: unknown } }[];
  [key: string]: unknown;
}

/** What the fake answers an embedding request with (before `embeddingAnswer`). */
export interface EmbeddingAnswer {
  object: 'list';
  model: string;
  data: { object: 'embedding'; index: number; embedding: unknown[] }[];
  usage: { prompt_tokens: number; total_tokens: number };
}

/** A body sent as it is, not as JSON. */
class RawBody {
  constructor(readonly text: string) {}
}

/** The start of a body that never ends: the headers and `head`, then a space every 100 ms. */
class StalledBody {
  constructor(readonly head: string) {}
}

export type ChatHandler = (request: ChatRequest, index: number) => ChatReply | Promise<ChatReply>;

/**
 * An OpenAI-compatible HTTP server for tests: /v1/chat/completions answers from the test's
 * handler, /v1/embeddings from a deterministic embedding. The real `openai` SDK talks to it, so
 * the product's request, retry and validation code runs for real. Lives in test/ only.
 */
export class FakeModel {
  readonly chatRequests: ChatRequest[] = [];
  /** The response bodies of successful chat requests, in order. */
  readonly chatResponses: { choices: { message: unknown }[] }[] = [];
  /** The request bodies of embedding requests, in order. */
  readonly embeddingBodies: unknown[] = [];
  embeddingRequests = 0;
  embeddedTexts = 0;
  /** Added before every chat answer (simulates model latency). */
  latencyMs = 0;
  /** Added before every embedding answer. */
  embeddingLatencyMs = 0;
  /** The next this-many embedding requests fail with `embeddingFailure` (a 500 by default). */
  failEmbeddings = 0;
  /** How a failed embedding request is answered: a 429 with its retry-after, say. */
  embeddingFailure: { status: number; headers?: Record<string, string> } = { status: 500 };
  /**
   * While true, embedding requests are read and never answered: an endpoint that takes the
   * connection and stalls, which only a timeout ends (stop() closes them).
   */
  stallEmbeddings = false;
  /**
   * While true, embedding requests are answered 200 with a body that never ends (see
   * StalledBody): the headers arrive in time, the rest never does.
   */
  stallEmbeddingBodies = false;
  /** Inputs longer than this are refused with a 400, as a real model refuses one past its context. */
  embeddingMaxChars = Infinity;
  /**
   * Chat requests whose messages, as JSON, are longer than this are refused as OpenAI refuses a
   * prompt past the model's context: a 400 with the code `context_length_exceeded`. Refused
   * requests are in `chatRequests` too, and never reach the handler.
   */
  chatMaxPromptChars = Infinity;
  /** When set, every embedding request is answered 200 with this body as it is (not JSON, say). */
  embeddingRawBody: string | null = null;
  /**
   * When set, a successful embedding request is answered 200 with what this returns, given the
   * answer the fake would send and the texts asked for (a string is sent as it is): an endpoint
   * whose vectors cannot be trusted.
   */
  embeddingAnswer: ((answer: EmbeddingAnswer, input: string[]) => unknown) | null = null;
  private server: Server | null = null;

  constructor(public chat: ChatHandler = () => ({ content: 'no changes' })) {}

  get url(): string {
    const address = this.server?.address() as AddressInfo | null;
    if (!address) throw new Error('fake model not started');
    return `http://127.0.0.1:${address.port}/v1`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req).then(
        ({ status, body, headers }) => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers });
          if (body instanceof StalledBody) {
            res.write(body.head);
            const trickle = setInterval(() => res.write(' '), 100);
            res.on('close', () => clearInterval(trickle));
            return;
          }
          res.end(body instanceof RawBody ? body.text : JSON.stringify(body));
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: err.message } }));
        },
      );
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(
    req: IncomingMessage,
  ): Promise<{ status: number; body: unknown; headers?: Record<string, string> }> {
    // What engram's outage probe asks (src/llm/probe.ts), as OpenAI-compatible servers answer it.
    if (req.method === 'GET' && req.url?.endsWith('/models'))
      return { status: 200, body: { object: 'list', data: [{ id: 'fake', object: 'model', owned_by: 'test' }] } };
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    if (req.url?.endsWith('/embeddings')) {
      const input = Array.isArray(body.input) ? (body.input as string[]) : [body.input as string];
      const dims = (body.dimensions as number | undefined) ?? 1536;
      this.embeddingRequests++;
      this.embeddingBodies.push(body);
      if (this.stallEmbeddings) return new Promise<never>(() => {});
      if (this.stallEmbeddingBodies) return { status: 200, body: new StalledBody('{"object":"list",') };
      if (this.embeddingRawBody !== null) return { status: 200, body: new RawBody(this.embeddingRawBody) };
      if (this.failEmbeddings > 0) {
        this.failEmbeddings--;
        const { status, headers } = this.embeddingFailure;
        const message = status === 429 ? 'Rate limit reached for requests' : 'embedding backend down';
        return { status, headers, body: { error: { message, type: 'fake_error' } } };
      }
      const tooLong = input.find((text) => text.length > this.embeddingMaxChars);
      if (tooLong !== undefined) {
        const message = `This model's maximum context length is ${this.embeddingMaxChars} characters, however you requested ${tooLong.length}`;
        return { status: 400, body: { error: { message, type: 'invalid_request_error' } } };
      }
      this.embeddedTexts += input.length;
      if (this.embeddingLatencyMs) await new Promise((r) => setTimeout(r, this.embeddingLatencyMs));
      const answer: EmbeddingAnswer = {
        object: 'list',
        model: body.model as string,
        data: input.map((text, index) => ({ object: 'embedding', index, embedding: fakeEmbedding(text, dims) })),
        usage: { prompt_tokens: tokens(input.join(' ')), total_tokens: tokens(input.join(' ')) },
      };
      if (!this.embeddingAnswer) return { status: 200, body: answer };
      const sent = this.embeddingAnswer(answer, input);
      return { status: 200, body: typeof sent === 'string' ? new RawBody(sent) : sent };
    }
    if (req.url?.endsWith('/chat/completions')) {
      const request = body as unknown as ChatRequest;
      const index = this.chatRequests.push(request) - 1;
      const promptChars = JSON.stringify(request.messages).length;
      if (promptChars > this.chatMaxPromptChars) {
        const message = `This model's maximum context length is ${this.chatMaxPromptChars} characters. However, your messages resulted in ${promptChars} characters. Please reduce the length of the messages.`;
        return {
          status: 400,
          body: {
            error: { message, type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' },
          },
        };
      }
      if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
      const reply = await this.chat(request, index);
      if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
      if ('rawBody' in reply)
        return {
          status: 200,
          body: new RawBody(reply.rawBody),
          headers: reply.contentType ? { 'content-type': reply.contentType } : undefined,
        };
      if ('stalledBody' in reply) return { status: 200, body: new StalledBody(reply.stalledBody) };
      if ('status' in reply)
        return {
          status: reply.status,
          headers: reply.headers,
          body: { error: { message: reply.error, type: 'fake_error', code: reply.code ?? null } },
        };
      const toolCalls = 'toolCalls' in reply ? reply.toolCalls : [];
      const promptTokens = tokens(JSON.stringify(request.messages)) + tokens(JSON.stringify(request.tools ?? []));
      const response = {
        status: 200,
        body: {
          id: `chatcmpl-fake-${index}`,
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model: request.model,
          choices: [
            {
              index: 0,
              finish_reason: reply.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop'),
              message: {
                role: 'assistant',
                content: reply.content ?? null,
                tool_calls: toolCalls.length
                  ? toolCalls.map((c, i) => ({
                      id: `call_${index}_${i}`,
                      type: 'function',
                      function: {
                        name: c.name,
                        arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments),
                      },
                    }))
                  : undefined,
              },
            },
          ],
          usage: { prompt_tokens: promptTokens, completion_tokens: 20, total_tokens: promptTokens + 20 },
        },
      };
      this.chatResponses.push(response.body);
      return response;
    }
    return { status: 404, body: { error: { message: `no route ${req.url}` } } };
  }
}

/** The sections engram's extraction prompt holds, parsed back (what a model reads). */
export function readPrompt(request: ChatRequest) {
  const user = request.messages.find((m) => m.role === 'user')?.content ?? '';
  const section = (tag: string) => {
    const m = new RegExp(`<${tag}[^>]*>\\n([\\s\\S]*?)\\n</${tag}>`).exec(user);
    return m ? (JSON.parse(m[1] as string) as unknown[]) : [];
  };
  const profiles = /<profiles>\n([\s\S]*?)\n<\/profiles>/.exec(user);
  return {
    profiles: (profiles ? JSON.parse(profiles[1] as string) : {}) as Record<string, Record<string, unknown> | null>,
    existing: section('existing_memories') as { id: string; kind: string; document: Record<string, unknown> }[],
    earlier: section('earlier_turns') as { role: string; content: string }[],
    /** Numbered from 1 (`turn`), as calls name them in `said_in_turn`. */
    turns: section('new_turns') as { turn: number; role: string; content: string; at?: string }[],
    /** A consolidation request's groups of near-duplicates. */
    groups: section('groups') as { id: string; kind: string; document: Record<string, unknown> }[][],
    tools: (request.tools ?? []).map((t) => t.function.name),
  };
}

function tokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
