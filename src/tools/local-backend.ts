import { fillNamespace } from '../core/namespace-template.js';
import { AuthError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { MemoryKind } from '../memory/kinds.js';
import type { Recall } from '../memory/recall.js';
import { toWrites } from '../memory/writes.js';
import type { MemoryDb } from '../store/memory-db.js';
import type { MemoryItem } from '../store/types.js';
import type { MemoryToolBackend, StoredMemory, ToolChangeResult } from './backend.js';

export interface LocalToolBackendDeps {
  memories: MemoryDb;
  embedder: Embedder;
  recall: Recall;
  /** The kinds the tools may write: their templates say where each kind's memories go. */
  kinds: readonly MemoryKind[];
}

/**
 * The tool session's calls against the store in this process. A write is what a reflection's
 * commit is, for one operation: `toWrites` (documents embedded in one call before a connection is
 * borrowed, invariant 8; a temporal kind's delete invalidates) and one change set through
 * `MemoryDb.apply` (invariant 9), compare-and-set on the version the model was shown.
 */
export class LocalToolBackend implements MemoryToolBackend {
  constructor(private readonly deps: LocalToolBackendDeps) {}

  async search(q: { context: Record<string, string>; kinds: string[]; query: string; limit: number }) {
    // Recall's own ranking (hybrid), and its TTL refresh: the model reading a memory is a recall.
    const found = await this.deps.recall.recall({ context: q.context, query: q.query, kinds: q.kinds, limit: q.limit });
    return found.memories.map((m) => ({ ...m }));
  }

  async apply({ context, op, actor }: Parameters<MemoryToolBackend['apply']>[0]): Promise<ToolChangeResult> {
    const { memories, embedder, kinds } = this.deps;
    const namespaceOf = (name: string) => {
      const kind = kinds.find((k) => k.name === name);
      if (!kind) throw new AuthError(`memory kind "${name}" is not one of this session's`, true);
      return fillNamespace(kind.namespace, context, name);
    };
    if (op.op !== 'insert') {
      // Defence in depth: a target comes from this session's own searches, so it is in the
      // context's namespace; anything else must not be written, whatever the session says.
      const home = namespaceOf(op.target.kind);
      if (JSON.stringify(home) !== JSON.stringify(op.target.namespace))
        throw new AuthError(`memory ${JSON.stringify(op.target.key)} is outside this session's namespaces`, true);
    }
    const now = new Date().toISOString();
    const writes = await toWrites({
      ops: [op],
      kinds: [...kinds],
      namespaceOf,
      embedder,
      // Said now: a new memory holds from now, a temporal kind's delete invalidates at now.
      validAt: () => now,
    });
    const applied = await memories.apply({ actor, writes });
    if (applied.status === 'conflict') {
      const target = op.op === 'insert' ? null : op.target;
      const current = target ? await memories.get(target.namespace, target.key) : null;
      return { status: 'conflict', current: current && stored(current) };
    }
    if (applied.status !== 'applied') throw new Error(`a tool write came back ${applied.status}`);
    const put = applied.results.findLast((r) => r.op === 'put');
    return { status: 'applied', memory: put?.op === 'put' ? stored(put.item) : null };
  }
}

function stored(item: MemoryItem): StoredMemory {
  const { namespace, key, kind, version, value, updatedAt } = item;
  return { namespace, key, kind, version, value, updatedAt };
}
