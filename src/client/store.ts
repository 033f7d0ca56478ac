import {
  batchResponse,
  deletedResponse,
  historyResponse,
  importResponse,
  itemResponse,
  itemsResponse,
  namespacesResponse,
  revertChangesResponse,
} from '../api/schemas.js';
import { exportOptionsSchema, scopeSchema, type ExportOptions, type ScopeInput } from '../lifecycle-schemas.js';
import { exportHeaderSchema } from '../store/export-format.js';
import type { ImportResult } from '../store/import-lines.js';
import {
  revertChangesInputSchema,
  revertItemInputSchema,
  type BatchOp,
  type DeleteInput,
  type GetInput,
  type ListNamespacesInput,
  type PutInput,
  type RevertChangesInput,
  type RevertItemInput,
  type SearchInput,
} from '../store/schemas.js';
import type { BatchResult, HistoryEntry, MemoryItem, Namespace, SearchItem } from '../store/types.js';
import { checked } from '../core/invalid-input.js';
import { importFile } from './checks.js';
import type { Transport } from './http.js';
import type { CallOptions } from './options.js';
import { namespaceQuery } from './query.js';

/** Batch ops that only read: a batch of them is safe to send again. */
const READS = new Set(['get', 'search', 'listNamespaces']);
/**
 * An import's answer, read leniently: a server from before `expired` (items left out because
 * their expiry had passed) imported every item, so it left none out. Its import must not be
 * reported as failed after it landed.
 */
const importAnswer = importResponse.extend({ expired: importResponse.shape.expired.default(0) });

/**
 * The store API over HTTP, with the SDK's call shapes (`put(namespace, key, value, options)`).
 * Reads are retried after a 503 or a lost connection; puts and deletes never are: a put or
 * delete that landed before its answer was lost would, sent again, write another version (or,
 * with `ifVersion`, fail as a conflict with itself). The caller decides, reading the item back.
 * The data lifecycle's calls (export, import, revert, revertChanges) check their input here,
 * before anything is sent, with the schemas the API checks it with.
 */
export class HttpStoreClient {
  constructor(private readonly http: Transport) {}

  async put(
    namespace: Namespace,
    key: string,
    value: Record<string, unknown>,
    options: Omit<PutInput, 'namespace' | 'key' | 'value'> = {},
    call?: CallOptions,
  ): Promise<MemoryItem> {
    const body = { namespace, key, value, ...options };
    const answer = await this.http.send(
      { method: 'PUT', path: '/v1/store/items', body, answer: itemResponse, idempotent: false },
      call,
    );
    return answer.item;
  }

  /** The item, or null when it is missing or expired. */
  async get(
    namespace: Namespace,
    key: string,
    options: Omit<GetInput, 'namespace' | 'key'> = {},
    call?: CallOptions,
  ): Promise<MemoryItem | null> {
    const answer = await this.http.send(
      {
        method: 'GET',
        path: '/v1/store/items',
        query: namespaceQuery(namespace, { key, ...options }),
        answer: itemResponse.nullable(),
        idempotent: true,
        nullOn404: true,
      },
      call,
    );
    return answer?.item ?? null;
  }

  /** True when a live item was deleted. */
  async delete(
    namespace: Namespace,
    key: string,
    options: Omit<DeleteInput, 'namespace' | 'key'> = {},
    call?: CallOptions,
  ): Promise<boolean> {
    const body = { namespace, key, ...options };
    const answer = await this.http.send(
      { method: 'DELETE', path: '/v1/store/items', body, answer: deletedResponse, idempotent: false },
      call,
    );
    return answer.deleted;
  }

  async search(
    namespacePrefix: Namespace,
    options: Omit<SearchInput, 'namespacePrefix'> = {},
    call?: CallOptions,
  ): Promise<SearchItem[]> {
    const body = { namespacePrefix, ...options };
    const answer = await this.http.send(
      { method: 'POST', path: '/v1/store/items/search', body, answer: itemsResponse, idempotent: true },
      call,
    );
    return answer.items;
  }

  async listNamespaces(options: ListNamespacesInput = {}, call?: CallOptions): Promise<Namespace[]> {
    const answer = await this.http.send(
      { method: 'POST', path: '/v1/store/namespaces', body: options, answer: namespacesResponse, idempotent: true },
      call,
    );
    return answer.namespaces;
  }

  /** Writes first, atomically and with one embedding call; then reads, which see them. */
  async batch(ops: BatchOp[], call?: CallOptions): Promise<BatchResult[]> {
    const answer = await this.http.send(
      {
        method: 'POST',
        path: '/v1/store/batch',
        body: { ops },
        answer: batchResponse,
        idempotent: ops.every((op) => READS.has(op.op)),
      },
      call,
    );
    return answer.results;
  }

  /** Oldest first, `limit` (100, at most 1,000) rows from `offset` (0). */
  async history(
    namespace: Namespace,
    key: string,
    page: { limit?: number; offset?: number } = {},
    call?: CallOptions,
  ): Promise<HistoryEntry[]> {
    const answer = await this.http.send(
      {
        method: 'GET',
        path: '/v1/store/items/history',
        query: namespaceQuery(namespace, { key, ...page }),
        answer: historyResponse,
        idempotent: true,
      },
      call,
    );
    return answer.history;
  }

  /**
   * An export file's lines (NDJSON: a header, each item under the scope with its indexed texts,
   * and its history rows when asked), as the SDK's `store.export` gives them: write them to a
   * file one per line, or hand them to another deployment's `import`. `scope`: a namespace prefix
   * (`['memories', 'u1']` or `{ namespacePrefix }`) or a user's namespaces (`{ context }`).
   * Bad input throws InputError at once; the request is sent when the lines are first read, and
   * the call's `timeoutMs` bounds reading them all (`GET /v1/export`, retried until it answers).
   */
  export(scope: ScopeInput, options: ExportOptions = {}, call?: CallOptions): AsyncGenerator<string> {
    const where = checked(scopeSchema, scope, 'export scope');
    const { history } = checked(exportOptionsSchema, options, 'export options');
    const query =
      where.namespacePrefix !== undefined
        ? namespaceQuery(where.namespacePrefix, { history })
        : namespaceQuery([], { context: JSON.stringify(where.context), history });
    return this.http.lines(
      { method: 'GET', path: '/v1/export', query, idempotent: true, header: exportHeaderSchema },
      call,
    );
  }

  /**
   * Imports an export file into empty namespaces, with its versions and history
   * (`POST /v1/import`): its lines (an array, the lines of `export`, any async iterable) or its
   * text. Every line is checked here first, as the API checks it (a bad line, or a key twice, is
   * an InputError naming it, a file over 64 MiB a LimitError), and nothing is sent unless all are
   * good. Never retried: a file that landed would, sent again, be refused as a conflict with
   * itself. `expired` counts the items left out because their expiry had passed.
   */
  async import(lines: string | Iterable<string> | AsyncIterable<string>, call?: CallOptions): Promise<ImportResult> {
    const ndjson = await importFile(lines);
    return this.http.send(
      { method: 'POST', path: '/v1/import', ndjson, answer: importAnswer, idempotent: false },
      call,
    );
  }

  /**
   * Puts an item back as it was at `version`, as a new version (`POST /v1/store/items/revert`);
   * a stale `ifVersion` is a ConflictError. Never retried, as a put is not.
   */
  async revert(
    namespace: Namespace,
    key: string,
    version: number,
    options: Omit<RevertItemInput, 'namespace' | 'key' | 'version'> = {},
    call?: CallOptions,
  ): Promise<MemoryItem> {
    const body = checked(revertItemInputSchema, { namespace, key, version, ...options }, 'revert request');
    const answer = await this.http.send(
      { method: 'POST', path: '/v1/store/items/revert', body, answer: itemResponse, idempotent: false },
      call,
    );
    return answer.item;
  }

  /**
   * Undoes everything one actor (`reflection:<job id>@<created ms>`, `consolidation:<job id>`...) changed
   * (`POST /v1/revert`); a ConflictError when a later change touched the same items, unless
   * `force`. Never retried: its own first attempt would be that later change.
   */
  async revertChanges(
    changedBy: string,
    options: Omit<RevertChangesInput, 'changedBy'> = {},
    call?: CallOptions,
  ): Promise<{ restored: number; deleted: number }> {
    const body = checked(revertChangesInputSchema, { changedBy, ...options }, 'revertChanges request');
    return this.http.send(
      { method: 'POST', path: '/v1/revert', body, answer: revertChangesResponse, idempotent: false },
      call,
    );
  }
}
