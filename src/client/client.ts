import { z } from 'zod';
import { enqueueResponse, eraseResponse, memoriesResponse, recallResponse } from '../api/schemas.js';
import { InputError } from '../errors.js';
import { scopeSchema, type ScopeInput } from '../lifecycle-schemas.js';
import type { recallInputSchema, searchInputSchema } from '../memory/recall-schemas.js';
import type { enqueueInputSchema, EnqueueResult } from '../queue/schemas.js';
import type { RecallResult } from '../memory/recall-schemas.js';
import type { ScoredMemory } from '../store/types.js';
import type { MemoryToolsOptions } from '../tools/create-session.js';
import type { ToolSession } from '../tools/session.js';
import { checked } from '../core/invalid-input.js';
import { Transport } from './http.js';
import { httpToolSession } from './memory-tools.js';
import { httpClientOptionsSchema, type CallOptions, type EngramHttpClientOptions } from './options.js';
import { HttpStoreClient } from './store.js';
import { namespaceQuery } from './query.js';

export type EnqueueInput = z.input<typeof enqueueInputSchema>;
export type SearchInput = z.input<typeof searchInputSchema>;
export type RecallInput = z.input<typeof recallInputSchema>;
/** What `erase` takes: a user (`{ context }`) or a namespace prefix (`{ namespacePrefix }`). */
export type EraseInput = { context: Record<string, string> } | { namespacePrefix: string[] };
export type EraseResult = z.output<typeof eraseResponse>;

/**
 * The SDK's calls over engram's HTTP API, with `fetch`: for applications that reach engram
 * only through its API (another host, API keys), rather than Redis and Postgres as the SDK
 * does. Input is checked by the API, which answers a refusal as the SDK's error classes; the data
 * lifecycle's calls (erase, export, import, revert) check theirs first, and send nothing bad.
 */
export class EngramHttpClient {
  private readonly http: Transport;
  /**
   * The store API: put, get, delete, search, listNamespaces, batch, history; export, import,
   * revert, revertChanges.
   */
  readonly store: HttpStoreClient;

  constructor(options: EngramHttpClientOptions) {
    const parsed = httpClientOptionsSchema.safeParse(options);
    if (!parsed.success)
      throw new InputError(`invalid engram HTTP client options: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
    this.http = new Transport(parsed.data);
    this.store = new HttpStoreClient(this.http);
  }

  /**
   * Buffers the turns of a thread (`POST /v1/threads/:threadId/turns`). Retried after a 503 or
   * a lost connection only when every message carries an `id`: ids make a re-send a no-op.
   */
  enqueue(input: EnqueueInput, call?: CallOptions): Promise<EnqueueResult> {
    const { threadId, ...body } = input;
    return this.http.send(
      {
        method: 'POST',
        path: `/v1/threads/${encodeURIComponent(threadId)}/turns`,
        body,
        answer: enqueueResponse,
        idempotent: Array.isArray(body.messages) && body.messages.every((m) => m.id !== undefined),
      },
      call,
    );
  }

  /** One namespace's memories, most similar to `query` first (`GET /v1/memories/search`). */
  async search(input: SearchInput, call?: CallOptions): Promise<ScoredMemory[]> {
    const { namespace, ...rest } = input;
    const answer = await this.http.send(
      {
        method: 'GET',
        path: '/v1/memories/search',
        query: namespaceQuery(namespace, rest),
        answer: memoriesResponse,
        idempotent: true,
      },
      call,
    );
    return answer.memories;
  }

  /**
   * The memory tools for one conversation (`manage_memory`, `search_memory`), as the SDK's
   * `memoryTools` makes them: `tools` for the model, `runToolCall` for each call it makes. Over
   * the API: searches are recalls, writes go to `POST /v1/tools/apply`. `kinds` must be the
   * service's (`defaultKinds` when omitted), checked against `GET /v1/kinds` before the first call.
   */
  memoryTools(options: MemoryToolsOptions): ToolSession {
    return httpToolSession(this.http, options);
  }

  /** Profiles and memories for the next prompt, with its prompt block (`POST /v1/recall`). */
  recall(input: RecallInput, call?: CallOptions): Promise<RecallResult> {
    return this.http.send(
      { method: 'POST', path: '/v1/recall', body: input, answer: recallResponse, idempotent: true },
      call,
    );
  }

  /**
   * Erases a user (`{ context }`: every namespace the service's kinds fill from it, and the
   * threads whose turns came with it, buffered turns and jobs included) or a namespace prefix,
   * for good, with a content-free audit row (`POST /v1/erase`). The input is checked before it
   * is sent. Never retried: a second erase would answer counts of nothing, as if none had been
   * erased; after an UnavailableError, erase again (it is what an erase is for).
   */
  async erase(input: EraseInput, call?: CallOptions): Promise<EraseResult> {
    const body = checked(scopeSchema, input satisfies ScopeInput, 'erase request');
    return this.http.send({ method: 'POST', path: '/v1/erase', body, answer: eraseResponse, idempotent: false }, call);
  }
}
