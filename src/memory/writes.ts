import { randomUUID } from 'node:crypto';
import type { Embedder } from '../llm/embedder.js';
import type { Write } from '../store/change-set.js';
import type { Namespace } from '../store/types.js';
import { embeddingTexts, profileKey, type CollectionKind, type MemoryKind } from './kinds.js';
import type { ManagerOp } from './tool-calls.js';

/** What toWrites needs: the model's operations and how to place and embed them. */
export interface ToWritesInput {
  ops: ManagerOp[];
  kinds: MemoryKind[];
  /** The namespace each kind writes to, filled from the thread's context. */
  namespaceOf: (kind: string) => Namespace;
  embedder: Embedder;
  signal?: AbortSignal | undefined;
  onEmbeddingUsage?: (promptTokens: number, model: string) => void;
  /**
   * When an operation's turn said what it records (ISO time): its new memory holds from then,
   * and a temporal kind's delete or rewrite invalidates at then. Omitted (a consolidation merge,
   * which changes no fact, only how it is kept): plain updates and deletes.
   */
  validAt?: ((op: ManagerOp) => string) | undefined;
}

/**
 * Manager operations to the writes of a change set, with every changed document embedded in ONE
 * batched call before any connection is borrowed (invariant 8). Updates and deletes compare the
 * version the model was shown; inserts of a profile take its fixed key and must find it empty.
 */
export async function toWrites(input: ToWritesInput): Promise<Write[]> {
  const kindByName = new Map(input.kinds.map((k) => [k.name, k]));
  const embedded = await embedOps(input, kindByName);
  return embedded.flatMap((e) => writesOf(e, input, kindByName));
}

/** An operation with its kind and its documents' indexed texts and vectors. */
interface Embedded {
  op: ManagerOp;
  kind: MemoryKind | undefined;
  indexed: { field: string; text: string; vector: number[] | undefined }[];
}

/** Every changed document's texts, embedded in one call. */
async function embedOps(input: ToWritesInput, kindByName: Map<string, MemoryKind>): Promise<Embedded[]> {
  const texts: string[] = [];
  const planned = input.ops.map((op) => {
    if (op.op === 'delete') return { op, kind: undefined, fields: [] as { field: string; index: number }[] };
    const kind = kindByName.get(op.op === 'insert' ? op.kind : op.target.kind) as MemoryKind;
    const fields = embeddingTexts(kind, op.document).map(({ field, text }) => ({ field, index: texts.push(text) - 1 }));
    return { op, kind, fields };
  });
  const vectors = texts.length ? await input.embedder.embed(texts, input.signal, input.onEmbeddingUsage) : [];
  return planned.map(({ op, kind, fields }) => ({
    op,
    kind,
    indexed: fields.map((f) => ({ field: f.field, text: texts[f.index] as string, vector: vectors[f.index] })),
  }));
}

/** One operation's writes: a put, a delete, or for a temporal kind an invalidation (and a put). */
function writesOf({ op, kind, indexed }: Embedded, input: ToWritesInput, kindByName: Map<string, MemoryKind>): Write[] {
  const validAt = input.validAt?.(op);
  if (op.op === 'insert') {
    const k = kind as MemoryKind;
    const common = {
      op: 'put',
      namespace: input.namespaceOf(op.kind),
      kind: op.kind,
      value: op.document,
      fields: indexed,
      validFrom: validAt,
    } as const;
    // A profile's key is fixed: "must not exist" (an expired one is gone, rule 4 of the writer).
    if (k.mode === 'profile') return [{ ...common, key: profileKey(k), ttl: k.ttlMs ?? null, ifVersion: 0 }];
    return [{ ...common, key: randomUUID(), ttl: k.ttlMs ?? null }];
  }
  const t = op.target;
  const target = { namespace: t.namespace, key: t.key, ifVersion: t.version };
  const temporal =
    validAt !== undefined &&
    kindByName.get(t.kind)?.mode === 'collection' &&
    (kindByName.get(t.kind) as CollectionKind).temporal;
  if (op.op === 'delete')
    return [temporal ? { op: 'invalidate', ...target, at: validAt } : { op: 'delete', ...target }];
  if (temporal) {
    // A fact is never rewritten: the old one stops holding, the new one holds from now on.
    const k = kind as MemoryKind;
    return [
      { op: 'invalidate', ...target, at: validAt },
      {
        op: 'put',
        namespace: t.namespace,
        key: randomUUID(),
        kind: t.kind,
        value: op.document,
        fields: indexed,
        ttl: k.ttlMs ?? null,
        validFrom: validAt,
      },
    ];
  }
  // A kind without a TTL keeps the expiry the item was given (by a store put).
  return [{ op: 'put', ...target, kind: t.kind, value: op.document, fields: indexed, ttl: kind?.ttlMs ?? 'keep' }];
}
