/** engram as a library: the producer SDK, kind declarations, and the pieces to embed a worker. */
export { EngramClient, type EngramClientOptions } from './sdk/client.js';
export { defineKind, defaultKinds, type MemoryKind, type MemoryKindInput } from './memory/kinds.js';
export { MemoryManager, type ManagerOp, type ManagerResult, type ExistingMemory } from './memory/manager.js';
export { Runtime, type Role, type RuntimeOptions } from './app/runtime.js';
export { parseEnv, envSchema, type Env } from './config/env.js';
export { InputError, RetryableError, PermanentError } from './errors.js';
export type { EnqueueInput, Message, ThreadContext } from './queue/schemas.js';
export type { EnqueueResult } from './queue/enqueue.js';
export type { MemoryItem, ScoredMemory, SearchItem, HistoryEntry, Namespace } from './store/types.js';
export { StoreClient } from './sdk/store-client.js';
export { Store, type StoreOptions, type BatchResult } from './store/store.js';
export type { PutInput, GetInput, DeleteInput, SearchInput as StoreSearchInput, ListNamespacesInput, BatchOp } from './store/schemas.js';
export type { FilterInput } from './store/filter.js';
export type { Db } from './store/db.js';
export { createPgDb } from './store/pool.js';
export { createPgliteDb } from './store/pglite.js';
export { migrate } from './store/migrate.js';
export type { Embedder } from './llm/embedder.js';
