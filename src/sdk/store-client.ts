import type { KindRoute } from '../core/kind-route.js';
import { checked } from '../core/invalid-input.js';
import { exportOptionsSchema, scopeSchema, type ExportOptions, type ScopeInput } from '../lifecycle-schemas.js';
import { namespacesOfContext } from '../memory/context-namespaces.js';
import type { ImportResult } from '../store/import-lines.js';
import type { StoreService, BatchResult, CallOptions } from '../store/store-service.js';
import type {
  BatchOp,
  DeleteInput,
  GetInput,
  HistoryInput,
  ListNamespacesInput,
  PutInput,
  SearchInput,
  RevertChangesInput,
  RevertItemInput,
} from '../store/schemas.js';
import type { HistoryEntry, MemoryItem, Namespace, SearchItem } from '../store/types.js';
import { InputError } from '../errors.js';
import { toSdkStoreError } from './errors.js';

/**
 * The store's failures as the SDK's error classes (Postgres out of reach: UnavailableError); a
 * read given up by its caller's signal rejects with the caller's own reason, as given.
 */
const sdk = <T>(work: Promise<T>, call: CallOptions = {}): Promise<T> =>
  work.catch((err: unknown) => {
    throw toSdkStoreError(err, call.signal);
  });

/**
 * The store API for SDK users, with LangGraph's call shapes (`put(namespace, key, value, opts)`).
 * Each call validates with the same schema as the HTTP API; bad input rejects with InputError, a
 * stale `ifVersion` with ConflictError, Postgres out of reach with UnavailableError. Reads take
 * a last `{ signal }`: given up, the read's statement is cancelled on Postgres and the call
 * rejects with the signal's reason.
 */
export class StoreClient {
  /**
   * `kinds`: the service's kinds, for an export by context (the namespaces they fill from it);
   * the client connects for them. Without it, an export takes a namespace prefix only.
   */
  constructor(
    private readonly store: StoreService,
    private readonly kinds?: () => Promise<readonly KindRoute[]>,
  ) {}

  put(
    namespace: Namespace,
    key: string,
    value: Record<string, unknown>,
    options: Omit<PutInput, 'namespace' | 'key' | 'value'> = {},
  ): Promise<MemoryItem> {
    return sdk(this.store.put({ namespace, key, value, ...options }));
  }

  /**
   * `refreshTtl`: renew the item's TTL (default: the client's `store.refreshTtlOnRead`, true).
   * `consistency: 'primary'`: read the primary, which shows every write already made (with
   * `databaseReadUrl`, a read replica may otherwise answer a moment behind).
   */
  get(
    namespace: Namespace,
    key: string,
    options: Omit<GetInput, 'namespace' | 'key'> = {},
    call: CallOptions = {},
  ): Promise<MemoryItem | null> {
    return sdk(this.store.get({ namespace, key, ...options }, call), call);
  }

  /** True when a live item was deleted. */
  delete(namespace: Namespace, key: string, options: Omit<DeleteInput, 'namespace' | 'key'> = {}): Promise<boolean> {
    return sdk(this.store.delete({ namespace, key, ...options }));
  }

  search(
    namespacePrefix: Namespace,
    options: Omit<SearchInput, 'namespacePrefix'> = {},
    call: CallOptions = {},
  ): Promise<SearchItem[]> {
    return sdk(this.store.search({ namespacePrefix, ...options }, call), call);
  }

  listNamespaces(options: ListNamespacesInput = {}, call: CallOptions = {}): Promise<Namespace[]> {
    return sdk(this.store.listNamespaces(options, call), call);
  }

  /**
   * Writes first, atomically and with one embedding call; then reads, which see them. `signal`
   * stops it between ops: given up before the writes, nothing is written; after, they stay.
   */
  batch(ops: BatchOp[], call: CallOptions = {}): Promise<BatchResult[]> {
    return sdk(this.store.batch(ops, call), call);
  }

  /** Oldest first, `limit` (100, at most 1,000) rows from `offset` (0). */
  history(
    namespace: Namespace,
    key: string,
    page: Omit<HistoryInput, 'namespace' | 'key'> = {},
    call: CallOptions = {},
  ): Promise<HistoryEntry[]> {
    return sdk(this.store.history({ namespace, key, ...page }, call), call);
  }

  /**
   * An export file's lines (NDJSON: a header, each item under the scope with its indexed texts,
   * and its history rows when asked), a page at a time. Write them to a file one per line.
   * `scope`: a namespace prefix (`['memories', 'u1']` or `{ namespacePrefix }`), or a user's
   * namespaces (`{ context }`: those the service's kinds fill from it, as `GET /v1/export?context=`
   * covers; the client connects to read the kinds). Bad input throws InputError at once.
   */
  export(scope: ScopeInput, options: ExportOptions = {}): AsyncGenerator<string> {
    const where = checked(scopeSchema, scope, 'export scope');
    const history = checked(exportOptionsSchema, options, 'export options').history ?? false;
    if (where.namespacePrefix !== undefined)
      return this.store.exportLines({
        prefixes: [where.namespacePrefix],
        history,
        scope: { namespacePrefix: where.namespacePrefix },
      });
    const context = where.context as Record<string, string>;
    const { store, kinds } = this;
    if (!kinds) throw new InputError("an export by `context` needs the service's kinds: export by namespace prefix");
    return (async function* () {
      yield* store.exportLines({ ...namespacesOfContext(await kinds(), context), history, scope: { context } });
    })();
  }

  /**
   * Imports an export file into empty namespaces, with their versions and history: its text,
   * its lines, or any async iterable of lines (as `export` gives). An item whose expiry has
   * passed since is left out and counted in `expired`.
   */
  import(lines: string | AsyncIterable<string> | Iterable<string>): Promise<ImportResult> {
    return sdk(this.store.import(lines));
  }

  /** Puts an item back as it was at `version` (a new version; `ifVersion` compares the current one). */
  revert(
    namespace: Namespace,
    key: string,
    version: number,
    options: Omit<RevertItemInput, 'namespace' | 'key' | 'version'> = {},
  ): Promise<MemoryItem> {
    return sdk(this.store.revert({ namespace, key, version, ...options }));
  }

  /**
   * Undoes everything one actor (`reflection:<job id>@<created ms>`, `consolidation:<job id>`...) changed;
   * rejects with ConflictError when a later change touched the same items, unless `force`.
   */
  revertChanges(
    changedBy: string,
    options: Omit<RevertChangesInput, 'changedBy'> = {},
  ): Promise<{ restored: number; deleted: number }> {
    return sdk(this.store.revertChanges({ changedBy, ...options }));
  }
}
