import type { z } from 'zod';
import { fillNamespace } from '../core/namespace-template.js';
import { InputError } from '../errors.js';
import { canDelete, canInsert, canUpdate, type MemoryKind } from '../memory/kinds.js';
import type { ManagerOp } from '../memory/tool-calls.js';
import { parseDocument, toolKinds } from './definitions.js';

/** A memory an update or delete names, as a remote tool session sends it. */
interface ToolTarget {
  namespace: string[];
  key: string;
  kind: string;
  version: number;
}

/**
 * The document's fields a kind's schema would drop. A plain zod object strips keys it does not
 * name: from a model's arguments that is noise worth ignoring, but a caller of the API that sent
 * them would lose them without a word. A kind whose schema says what to do with other keys
 * (`z.looseObject` keeps them, `z.strictObject` refuses them) is left to its schema.
 */
function unnamedFields(schema: z.ZodObject, document: Record<string, unknown>): string[] {
  if (schema.def.catchall) return [];
  return Object.keys(document).filter((field) => !Object.hasOwn(schema.shape, field));
}

/** One `manage_memory` operation from outside this process (`POST /v1/tools/apply`). */
export type ToolOp =
  | { op: 'insert'; kind: string; document: Record<string, unknown> }
  | { op: 'update'; target: ToolTarget; document: Record<string, unknown> }
  | { op: 'delete'; target: ToolTarget };

/**
 * An operation a remote tool session decided, checked again here as the session checks the
 * model's arguments: the session runs in the caller's process, so what it sends is input. The
 * kind must be a collection kind of the service's that allows the operation, the document must
 * match its schema (the same check and message as model output), and the context must fill the
 * kind's namespace. Throws InputError (a 400) saying what is wrong; nothing is written.
 * Whether an update's or delete's target is in the context's namespace is `LocalToolBackend`'s
 * check (a 403).
 */
export function checkToolOp(op: ToolOp, kinds: readonly MemoryKind[], context: Record<string, string>): ManagerOp {
  const managed = toolKinds(kinds);
  const name = op.op === 'insert' ? op.kind : op.target.kind;
  const kind = managed.find((k) => k.name === name);
  if (!kind)
    throw new InputError(
      `memory kind "${name}" is not one the tools manage (the service's collection kinds: ${managed.map((k) => k.name).join(', ') || 'none'})`,
    );
  try {
    fillNamespace(kind.namespace, context, kind.name);
  } catch (err) {
    throw new InputError(`context: ${(err as Error).message}`, undefined, { cause: err });
  }
  const allowed = op.op === 'insert' ? canInsert(kind) : op.op === 'update' ? canUpdate(kind) : canDelete(kind);
  const verb = op.op === 'insert' ? 'created' : op.op === 'update' ? 'updated' : 'deleted';
  if (!allowed) throw new InputError(`"${kind.name}" memories cannot be ${verb}`);
  if (op.op === 'delete') return { op: 'delete', target: { ...op.target, document: {} } };
  const unknown = unnamedFields(kind.schema, op.document);
  if (unknown.length)
    throw new InputError(
      `the document has fields the "${kind.name}" schema does not name: ${unknown.slice(0, 20).join(', ')} (its fields: ${Object.keys(kind.schema.shape).join(', ')})`,
    );
  const doc = parseDocument(kind, op.document);
  if ('error' in doc) throw new InputError(doc.error);
  // The target's document is what the model was shown, for a reflection's no-op check; the
  // writer compares versions only, and the session has skipped an unchanged update already.
  if (op.op === 'update') return { op: 'update', target: { ...op.target, document: {} }, document: doc.document };
  return { op: 'insert', kind: kind.name, document: doc.document };
}
