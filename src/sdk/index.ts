/**
 * `engram/sdk`: what a chat application's process needs (enqueue, search, the store API), without
 * what only engram's own processes load (the HTTP server, Bull Board, workers, the chat model).
 * The package root exports all of it too; this entry keeps those modules out of a producer's
 * process (test/sdk-entry.test.ts walks its imports).
 */
export { EngramClient, type EngramClientOptions, type ReadCallOptions } from './client.js';
export { StoreClient } from './store-client.js';
export { defineKind, defineKinds, defaultKinds, type MemoryKind, type MemoryKindInput } from '../memory/kinds.js';
export {
  InputError,
  LimitError,
  ConflictError,
  AuthError,
  RetryableError,
  UnavailableError,
  PermanentError,
  ModelOutputError,
} from '../errors.js';
export type { KindRoute } from '../core/kind-route.js';
export type { PublishedSettings } from '../config/published-settings.js';
export type { EnqueueInput, Message, ThreadContext } from '../queue/schemas.js';
export type { EnqueueResult } from '../queue/enqueue.js';
export type { EraseInput, EraseResult } from '../memory/erase.js';
export type {
  RecallInput,
  RecallResult,
  RecalledMemory,
  RecalledProfile,
  Reranker,
  SearchInput,
} from '../memory/recall.js';
export type { MemoryItem, ScoredMemory, SearchItem, HistoryEntry, Namespace, BatchResult } from '../store/types.js';
export type {
  PutInput,
  GetInput,
  DeleteInput,
  SearchInput as StoreSearchInput,
  ListNamespacesInput,
  BatchOp,
  HistoryInput,
  RevertItemInput,
  RevertChangesInput,
} from '../store/schemas.js';
export type { ScopeInput as ExportScope, ExportOptions } from '../lifecycle-schemas.js';
export type { FilterInput } from '../store/filter.js';
export type { Db } from '../store/db.js';
export type { Embedder } from '../llm/embedder.js';
export type { MemoryToolsOptions } from '../tools/create-session.js';
export type { ToolSession, ToolCall, ToolMessage, ToolResult } from '../tools/session.js';
export type { MemoryToolBackend, StoredMemory, ToolChangeResult } from '../tools/backend.js';
