import { randomUUID } from 'node:crypto';
import type { Embedder } from '../llm/embedder.js';
import type { MemoryWrite, Namespace } from '../store/types.js';
import { embeddingTexts, profileKey, type MemoryKind } from './kinds.js';
import type { ManagerOp } from './tool-calls.js';

/**
 * Manager operations to store writes, with every changed document embedded in ONE batched call
 * before any connection is borrowed (invariant 8). Inserts of a profile take its fixed key, so
 * the primary key itself forbids a second profile in a namespace.
 */
export async function toWrites(input: {
  ops: ManagerOp[];
  kinds: MemoryKind[];
  /** The namespace each kind writes to, filled from the thread's context. */
  namespaceOf: (kind: string) => Namespace;
  embedder: Embedder;
  signal?: AbortSignal | undefined;
  onEmbeddingUsage?: (promptTokens: number, model: string) => void;
}): Promise<MemoryWrite[]> {
  const kindByName = new Map(input.kinds.map((k) => [k.name, k]));
  const texts: string[] = [];
  const planned = input.ops.map((op) => {
    if (op.op === 'delete') return { op, kind: undefined, fields: [] as { field: string; index: number }[] };
    const kind = kindByName.get(op.op === 'insert' ? op.kind : op.target.kind) as MemoryKind;
    const fields = embeddingTexts(kind, op.document).map(({ field, text }) => ({ field, index: texts.push(text) - 1 }));
    return { op, kind, fields };
  });
  const vectors = texts.length ? await input.embedder.embed(texts, input.signal, input.onEmbeddingUsage) : [];
  return planned.map(({ op, kind, fields }): MemoryWrite => {
    const embeddings = fields.map((f) => ({ field: f.field, vector: vectors[f.index] as number[] }));
    const ttlMs = kind?.ttlMs ?? null;
    if (op.op === 'insert') {
      const k = kind as MemoryKind;
      const key = k.mode === 'profile' ? profileKey(k) : randomUUID();
      return {
        op: 'insert',
        namespace: input.namespaceOf(op.kind),
        key,
        kind: op.kind,
        value: op.document,
        embeddings,
        ttlMs,
      };
    }
    if (op.op === 'update') {
      const t = op.target;
      return {
        op: 'update',
        namespace: t.namespace,
        key: t.key,
        kind: t.kind,
        value: op.document,
        expectedVersion: t.version,
        embeddings,
        ttlMs,
      };
    }
    return { op: 'delete', namespace: op.target.namespace, key: op.target.key, expectedVersion: op.target.version };
  });
}
