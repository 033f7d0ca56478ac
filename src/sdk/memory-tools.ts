import type { KindRoute } from '../core/kind-route.js';
import type { Embedder } from '../llm/embedder.js';
import { defaultKinds } from '../memory/kinds.js';
import type { Recall } from '../memory/recall.js';
import type { MemoryDb } from '../store/memory-db.js';
import type { MemoryToolBackend } from '../tools/backend.js';
import { checkedBackend } from '../tools/checked-backend.js';
import { createToolSession, type MemoryToolsOptions } from '../tools/create-session.js';
import { LocalToolBackend } from '../tools/local-backend.js';
import type { ToolSession } from '../tools/session.js';
import { toSdkError } from './errors.js';

export interface SdkToolParts {
  recall: Recall;
  memories: MemoryDb;
  embedder: Embedder;
  /** Connects the client and resolves to the service's kinds (published, or the client's own). */
  serviceKinds: () => Promise<readonly KindRoute[]>;
}

/**
 * The SDK's tool session: the local backend (this process writes through the store's writer,
 * as the SDK's store API does), checked once against the service's kinds before its first call,
 * so that a tool's memories land where the service's reflections look. Failures of Redis or
 * Postgres reject with the SDK's error classes.
 */
export function sdkToolSession(parts: SdkToolParts, options: MemoryToolsOptions): ToolSession {
  const kinds = options.kinds ?? defaultKinds;
  const checked = checkedBackend(new LocalToolBackend({ ...parts, kinds }), kinds, parts.serviceKinds);
  const sdk = <T>(work: () => Promise<T>): Promise<T> =>
    work().catch((err: unknown) => {
      throw toSdkError(err, 'postgres');
    });
  const backend: MemoryToolBackend = {
    search: (q) => sdk(() => checked.search(q)),
    apply: (c) => sdk(() => checked.apply(c)),
  };
  return createToolSession(backend, options, defaultKinds);
}
