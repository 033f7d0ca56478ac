import { createRequire } from 'node:module';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { templateVariables } from '../core/namespace-template.js';
import { InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { MemoryKind } from '../memory/kinds.js';
import type { Recall } from '../memory/recall.js';
import type { Logger } from '../observability/logger.js';
import type { EnqueueResult } from '../queue/enqueue.js';
import type { EnqueueParsed } from '../queue/schemas.js';
import type { MemoryDb } from '../store/memory-db.js';
import { createToolSession } from '../tools/create-session.js';
import { LocalToolBackend } from '../tools/local-backend.js';
import { registerProfileResources } from './resources.js';
import { registerMcpTools } from './tools.js';

/** What the MCP server reads and writes through: a runtime's own parts. */
export interface McpDeps {
  recall: Recall;
  /**
   * Buffers turns for background formation, checked already: the API's producer, or in a stdio
   * process an SDK client's (which runs with the settings the service published, as any producer).
   */
  enqueue: (input: EnqueueParsed) => Promise<EnqueueResult>;
  memories: MemoryDb;
  embedder: Embedder;
  kinds: readonly MemoryKind[];
  log: Logger;
}

/** One MCP session's fixed settings: its caller decides them, never the model. */
export interface McpSessionConfig {
  /** Fills the kinds' namespaces (under an API key, stamped with the key's tenant). */
  context: Record<string, string>;
  /** The thread `remember` enqueues turns on, as engram keys it (behind its tenant under an API key). */
  threadId: string;
}

const { version } = createRequire(import.meta.url)('engram/package.json') as { version: string };

const INSTRUCTIONS = `engram keeps long-term memories about the user across conversations.
Call recall before answering when earlier conversations may matter. Hand engram the conversation's
turns with remember (messages) and it forms memories in the background; store one fact at once with
remember (document). search_memory finds memories; forget deletes one by its id; memory_history shows
how one changed. Ids (m1, m2...) hold for this session.`;

/**
 * An MCP server for one session (one stdio process, or one HTTP session): the tools of tools.ts
 * and a resource per profile kind, over the same store, recall and producer as the HTTP API.
 * Refuses (InputError) a context that cannot fill every kind's namespace.
 */
export function createMcpServer(deps: McpDeps, config: McpSessionConfig): McpServer {
  const missing = [...new Set(deps.kinds.flatMap((k) => templateVariables(k.namespace)))].filter(
    (v) => config.context[v] === undefined,
  );
  if (missing.length)
    throw new InputError(
      `the MCP session's context is missing ${missing.map((m) => `"${m}"`).join(', ')}, needed by the memory namespaces`,
    );
  const backend = new LocalToolBackend({ ...deps, kinds: deps.kinds });
  const session = createToolSession(backend, { context: config.context, kinds: [...deps.kinds] }, deps.kinds);
  const server = new McpServer({ name: 'engram', version }, { instructions: INSTRUCTIONS });
  registerMcpTools(server, { ...deps, session, config });
  registerProfileResources(server, deps, config.context);
  return server;
}
