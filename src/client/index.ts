/**
 * `engram/client`: the SDK's calls over engram's HTTP API, with `fetch` (docs/http-client.md).
 * It loads zod and engram's schemas, nothing else: no Redis, Postgres or model client
 * (test/client-entry.test.ts walks its imports).
 */
export {
  EngramHttpClient,
  type EnqueueInput,
  type SearchInput,
  type RecallInput,
  type EraseInput,
  type EraseResult,
} from './client.js';
export type { ScopeInput as ExportScope, ExportOptions } from '../lifecycle-schemas.js';
export { HttpStoreClient } from './store.js';
export { HttpToolBackend } from './memory-tools.js';
export type { ToolSession, ToolCall, ToolMessage, ToolResult } from '../tools/session.js';
export type { MemoryToolsOptions } from '../tools/create-session.js';
export type { MemoryToolBackend, StoredMemory, ToolChangeResult } from '../tools/backend.js';
export { defineKind, defineKinds, defaultKinds, type MemoryKind, type MemoryKindInput } from '../memory/kinds.js';
export type { EngramHttpClientOptions, CallOptions } from './options.js';
export {
  InputError,
  LimitError,
  ConflictError,
  AuthError,
  RetryableError,
  UnavailableError,
  PermanentError,
} from '../errors.js';
export type { EnqueueResult, Message, ThreadContext } from '../queue/schemas.js';
export type { RecallResult, RecalledMemory, RecalledProfile } from '../memory/recall-schemas.js';
export type { MemoryItem, ScoredMemory, SearchItem, HistoryEntry, Namespace, BatchResult } from '../store/types.js';
export type {
  PutInput,
  GetInput,
  DeleteInput,
  SearchInput as StoreSearchInput,
  ListNamespacesInput,
  BatchOp,
  RevertItemInput,
  RevertChangesInput,
} from '../store/schemas.js';
export type { FilterInput } from '../store/filter.js';
