import type { ManagerOp } from '../memory/tool-calls.js';
import type { Namespace } from '../store/types.js';

/**
 * What a tool session needs from wherever the memories are: two calls, so that the same session
 * (definitions, argument checks, short ids, tool messages) runs in-process over the store
 * (local-backend.ts: the SDK, the MCP server) or over HTTP in a remote client, which implements
 * `search` with `POST /v1/recall` and `apply` with a route that runs `LocalToolBackend.apply`.
 */
export interface MemoryToolBackend {
  /**
   * The memories of these collection kinds in the namespaces the context fills, most relevant to
   * `query` first (recall's ranking), at most `limit`.
   */
  search(query: {
    context: Record<string, string>;
    kinds: string[];
    query: string;
    limit: number;
  }): Promise<StoredMemory[]>;
  /**
   * One operation as one change set through the store's writer, with `actor` in its history.
   * An update or delete compares the version the model was shown (`target.version`).
   */
  apply(change: { context: Record<string, string>; op: ManagerOp; actor: string }): Promise<ToolChangeResult>;
}

/** A memory as a tool session keeps it. */
export interface StoredMemory {
  namespace: Namespace;
  key: string;
  kind: string;
  version: number;
  value: Record<string, unknown>;
  updatedAt: Date;
}

export type ToolChangeResult =
  /** `memory`: the memory as written (null after a delete or an invalidation). */
  | { status: 'applied'; memory: StoredMemory | null }
  /** Nothing written: the memory moved since the model saw it; `current` is how it is now (null: gone). */
  | { status: 'conflict'; current: StoredMemory | null };
