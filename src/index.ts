/** engram as a library: the producer SDK (also alone as `engram/sdk`), and the pieces to embed a worker. */
export * from './sdk/index.js';
export { EngramHttpClient, HttpStoreClient, type EngramHttpClientOptions, type CallOptions } from './client/index.js';
export { loadKindsFile, parseKinds } from './memory/kinds-file.js';
export {
  MemoryManager,
  createMemoryManager,
  type ManagerOp,
  type ManagerResult,
  type ExistingMemory,
  type ExtractInput,
} from './memory/manager.js';
export {
  PromptOptimizer,
  type OptimizeInput,
  type OptimizeResult,
  type PromptVersion,
} from './memory/procedural/prompt-optimizer.js';
export { OpenAIChatModel, type ChatModel } from './llm/chat-model.js';
export type { RetryPolicy } from './llm/retry.js';
export type { UsageSink, UsageRecord, TokenUsage } from './observability/usage.js';
export { Runtime, type Role, type RuntimeOptions } from './app/runtime.js';
export { parseEnv, envSchema, type Env } from './config/env.js';
export { createLogger } from './observability/logger.js';
export { StoreService, type StoreOptions, type BatchResult } from './store/store-service.js';
export { createPgDb } from './store/pool.js';
export { createPgliteDb } from './store/pglite.js';
export { migrate } from './store/migrate.js';
export {
  ToolSession,
  createToolSession,
  LocalToolBackend,
  buildToolDefinitions,
  type LocalToolBackendDeps,
} from './tools/index.js';
