/** engram as a library: the producer SDK, kind declarations, and the pieces to embed a worker. */
export { EngramClient, type EngramClientOptions } from './sdk/client.js';
export { defineKind, defineKinds, defaultKinds, type MemoryKind, type MemoryKindInput } from './memory/kinds.js';
export { loadKindsFile, parseKinds } from './memory/kinds-file.js';
export { MemoryManager, createMemoryManager, type ManagerOp, type ManagerResult, type ExistingMemory, type ExtractInput } from './memory/manager.js';
export { PromptOptimizer, type OptimizeInput, type OptimizeResult, type PromptVersion } from './memory/procedural/prompt-optimizer.js';
export { OpenAIChatModel, type ChatModel } from './llm/chat-model.js';
export type { RetryPolicy } from './llm/retry.js';
export type { UsageSink, UsageRecord, TokenUsage } from './llm/usage.js';
export { Runtime, type Role, type RuntimeOptions } from './app/runtime.js';
export { parseEnv, envSchema, type Env } from './config/env.js';
export { InputError, RetryableError, PermanentError } from './errors.js';
export type { EnqueueInput, Message, ThreadContext } from './queue/schemas.js';
export type { EnqueueResult } from './queue/enqueue.js';
export type { MemoryItem, ScoredMemory, Namespace } from './store/types.js';
export type { Embedder } from './llm/embedder.js';
