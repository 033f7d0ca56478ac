/**
 * The hot-path memory tools, for any transport: the session (definitions, checks, short ids,
 * tool messages) over a `MemoryToolBackend`. In this process, `LocalToolBackend` writes through
 * the store; a remote client implements the backend's two calls over HTTP.
 */
export { ToolSession, toolContent, type ToolCall, type ToolMessage, type ToolResult } from './session.js';
export {
  createToolSession,
  kindsMismatch,
  memoryToolsOptionsSchema,
  type MemoryToolsOptions,
} from './create-session.js';
export { checkedBackend } from './checked-backend.js';
export { checkToolOp, type ToolOp } from './op-check.js';
export { LocalToolBackend, type LocalToolBackendDeps } from './local-backend.js';
export type { MemoryToolBackend, StoredMemory, ToolChangeResult } from './backend.js';
export {
  buildToolDefinitions,
  MANAGE_TOOL,
  SEARCH_TOOL,
  manageArgsSchema,
  searchArgsSchema,
  type ManageArgs,
  type SearchArgs,
} from './definitions.js';
