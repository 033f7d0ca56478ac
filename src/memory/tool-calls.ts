import { z } from 'zod';
import {
  DELETE_TOOL,
  deleteArgsSchema,
  insertToolName,
  insertTurnSchema,
  ownsSaidInTurn,
  patchArgsSchema,
  SAID_IN_TURN,
  patchToolName,
  UPDATE_TOOL,
  updateArgsSchema,
} from './extraction-prompt.js';
import { canDelete, canInsert, canUpdate, type MemoryKind, type ProfileKind } from './kinds.js';
import { formatPath, JSON_MAX_DEPTH, jsonProblem, type JsonProblem } from '../core/json-bounds.js';
import { STORED_VALUE_BOUNDS } from '../store/schemas.js';
import type { FunctionCall } from './answer-calls.js';
import { mergePatch } from './merge-patch.js';

export interface ExistingMemory {
  namespace: string[];
  key: string;
  kind: string;
  version: number;
  document: Record<string, unknown>;
}

/**
 * What the model decided. `turn`: the index in the extraction's `turns` of the turn that said it,
 * when the model named one that exists (a reflection dates the memory by that turn's time).
 */
export type ManagerOp =
  | { op: 'insert'; kind: string; document: Record<string, unknown>; turn?: number }
  | { op: 'update'; target: ExistingMemory; document: Record<string, unknown>; turn?: number }
  | { op: 'delete'; target: ExistingMemory; turn?: number };

export type CallOutcome = { error: string } | { accepted: true };

/**
 * How deep a call's arguments may nest: the store's bound, and one more level for an update's
 * `{ id, document }` around its document. Checked before anything recursive reads them (merge
 * patch, zod, JSON.stringify), which a model's answer nested thousands of levels deep overflowed.
 */
const ARGS_BOUNDS = { maxDepth: JSON_MAX_DEPTH + 1, text: true };

interface ProfileState {
  kind: ProfileKind;
  target: ExistingMemory | null;
  document: Record<string, unknown> | null;
  patched: boolean;
}

/**
 * Checks the model's tool calls of one extraction, across its repair rounds (invariant 7: model
 * output is untrusted input). Accepted calls accumulate; `ops()` is the result once every call of
 * the last round was accepted. Nothing here has side effects.
 */
export class ToolCallChecker {
  private readonly kinds: Map<string, MemoryKind>;
  private readonly accepted: ManagerOp[] = [];
  private readonly touched = new Set<ExistingMemory>();
  private readonly inserted = new Set<string>();
  private readonly profiles = new Map<string, ProfileState>();

  constructor(
    kinds: MemoryKind[],
    private readonly byAlias: Map<string, ExistingMemory>,
    profileDocs: ExistingMemory[],
    /** The extraction's new turns, which calls may name (none for a merge). */
    private readonly turns = 0,
    /** A merge's groups: a rewrite must replace memories of its own group (`checkAnswer`). */
    private readonly groups?: ExistingMemory[][],
  ) {
    this.kinds = new Map(kinds.map((k) => [k.name, k]));
    for (const kind of kinds) {
      if (kind.mode !== 'profile') continue;
      const target = profileDocs.find((p) => p.kind === kind.name) ?? null;
      this.profiles.set(kind.name, { kind, target, document: target?.document ?? null, patched: false });
    }
  }

  /** Checks the calls of one answer, in order; their outcomes, in the same order. */
  checkAnswer(calls: FunctionCall[]): CallOutcome[] {
    const made: (ManagerOp | undefined)[] = [];
    const outcomes = calls.map((call) => {
      const before = this.accepted.length;
      const outcome = this.check(call.name, call.arguments);
      made.push(this.accepted.length > before ? this.accepted.at(-1) : undefined);
      return outcome;
    });
    if (this.groups) this.keepRewritesInGroups(made, outcomes);
    return outcomes;
  }

  /** Checks one call; accepted calls change the state, rejected ones return the reason. */
  check(name: string, rawArgs: string): CallOutcome {
    let args: unknown;
    try {
      args = JSON.parse(rawArgs);
    } catch {
      return { error: `${name}: arguments are not valid JSON` };
    }
    // NUL or a lone surrogate would fail the commit on every attempt (jsonb refuses both).
    const problem = jsonProblem(args, ARGS_BOUNDS);
    if (problem) return { error: `${name}: ${described(problem)}` };
    if (name === UPDATE_TOOL) return this.update(args);
    if (name === DELETE_TOOL) return this.delete(args);
    for (const kind of this.kinds.values()) {
      if (kind.mode === 'profile' && name === patchToolName(kind.name)) return this.patch(kind, args);
      if (canInsert(kind) && name === insertToolName(kind.name)) return this.insert(kind, args);
    }
    return { error: `unknown tool "${name}"` };
  }

  /** The operations decided so far: collection ops in call order, then one op per patched profile. */
  ops(): ManagerOp[] {
    const profileOps: ManagerOp[] = [];
    for (const p of this.profiles.values()) {
      if (!p.patched || !p.document) continue;
      if (p.target && canonical(p.target.document) === canonical(p.document)) continue; // a no-op patch writes nothing
      profileOps.push(
        p.target
          ? { op: 'update', target: p.target, document: p.document }
          : { op: 'insert', kind: p.kind.name, document: p.document },
      );
    }
    return [...this.accepted, ...profileOps];
  }

  /**
   * A merge rewrites one memory of a group to hold what others of that group say, and deletes
   * them. Every alias is valid in every call, so nothing else stops a rewrite in one group from
   * taking in a memory that a delete removes from another. A rewrite whose group loses no memory
   * to a delete took its text from elsewhere, or made it up: rejected, and with it the answer's
   * deletes in groups it rewrote nothing of, which may be what it took in. Deletes alone stay
   * allowed, as repeats of a memory kept as it is.
   */
  private keepRewritesInGroups(made: (ManagerOp | undefined)[], outcomes: CallOutcome[]): void {
    const groupOf = new Map<ExistingMemory, number>();
    for (const [i, group] of (this.groups ?? []).entries()) for (const m of group) groupOf.set(m, i);
    const deletedIn = new Set(this.accepted.flatMap((op) => (op.op === 'delete' ? [groupOf.get(op.target)] : [])));
    const aliasOf = new Map([...this.byAlias].map(([alias, m]) => [m, alias]));
    const aliases = (group: number | undefined) =>
      (this.groups?.[group ?? -1] ?? []).map((m) => aliasOf.get(m)).join(', ');
    const drop = (i: number, op: ManagerOp & { target: ExistingMemory }, error: string) => {
      this.accepted.splice(this.accepted.indexOf(op), 1);
      this.touched.delete(op.target);
      outcomes[i] = { error };
    };

    const strays: string[] = [];
    for (const [i, op] of made.entries()) {
      if (op?.op !== 'update' || deletedIn.has(groupOf.get(op.target))) continue;
      const alias = aliasOf.get(op.target) as string;
      strays.push(alias);
      drop(
        i,
        op,
        `${UPDATE_TOOL}: "${alias}" was rewritten, but no other memory of its group (${aliases(groupOf.get(op.target))}) was deleted. A merge rewrites one memory of a group to hold what the others of that same group say, and deletes those others; it never takes in a memory of another group. Delete the memories of this group it replaces, or leave the group alone`,
      );
    }
    if (!strays.length) return;
    const rewritten = new Set(this.accepted.flatMap((op) => (op.op === 'update' ? [groupOf.get(op.target)] : [])));
    for (const [i, op] of made.entries()) {
      if (op?.op !== 'delete' || rewritten.has(groupOf.get(op.target))) continue;
      drop(
        i,
        op,
        `${DELETE_TOOL}: not kept: nothing of the group of "${aliasOf.get(op.target)}" (${aliases(groupOf.get(op.target))}) was rewritten, and this answer rewrote ${strays.map((a) => `"${a}"`).join(', ')} outside its own group, perhaps with what this memory says. Send it again if it repeats a memory of its own group that stays`,
      );
    }
  }

  private insert(kind: MemoryKind, raw: unknown) {
    const { args, turn } = this.withoutTurn(kind, raw);
    const doc = kind.schema.safeParse(args);
    if (!doc.success)
      return {
        error: `${insertToolName(kind.name)}: document does not match the "${kind.name}" schema: ${z.prettifyError(doc.error)}`,
      };
    const unstorable = storeProblem(insertToolName(kind.name), 'the document', doc.data);
    if (unstorable) return unstorable;
    const id = `${kind.name}\u0000${canonical(doc.data)}`;
    // The same document twice in one answer (parallel calls repeat themselves) is stored once.
    if (!this.inserted.has(id)) {
      this.inserted.add(id);
      this.accepted.push({ op: 'insert', kind: kind.name, document: doc.data, ...turn });
    }
    return { accepted: true as const };
  }

  private update(args: unknown) {
    const found = this.resolve(UPDATE_TOOL, updateArgsSchema, args, canUpdate, 'updated');
    if ('error' in found) return found;
    const { memory, kind } = found;
    const doc = kind.schema.safeParse(found.args.document);
    if (!doc.success)
      return {
        error: `${UPDATE_TOOL}: document does not match the "${kind.name}" schema: ${z.prettifyError(doc.error)}`,
      };
    const unstorable = storeProblem(UPDATE_TOOL, 'the document', doc.data);
    if (unstorable) return unstorable;
    this.touched.add(memory);
    // An update to the same document is no change: no write, no history row, no version bump.
    if (canonical(doc.data) !== canonical(memory.document))
      this.accepted.push({ op: 'update', target: memory, document: doc.data, ...this.turn(found.args) });
    return { accepted: true as const };
  }

  private delete(args: unknown) {
    const found = this.resolve(DELETE_TOOL, deleteArgsSchema, args, canDelete, 'deleted');
    if ('error' in found) return found;
    this.touched.add(found.memory);
    this.accepted.push({ op: 'delete', target: found.memory, ...this.turn(found.args) });
    return { accepted: true as const };
  }

  private patch(kind: ProfileKind, args: unknown) {
    const name = patchToolName(kind.name);
    const parsed = patchArgsSchema.safeParse(args);
    if (!parsed.success) return { error: `${name}: the arguments must be an object of the fields to change` };
    const state = this.profiles.get(kind.name) as ProfileState;
    const doc = kind.schema.safeParse(mergePatch(state.document ?? {}, parsed.data));
    if (!doc.success) {
      const hint = state.document ? '' : ' (there is no profile yet: the first patch must hold every required field)';
      return {
        error: `${name}: the patched profile does not match the "${kind.name}" schema${hint}: ${z.prettifyError(doc.error)}`,
      };
    }
    const unstorable = storeProblem(name, 'the patched profile', doc.data);
    if (unstorable) return unstorable;
    state.document = doc.data;
    state.patched = true;
    return { accepted: true as const };
  }

  /** An insert's document, and the turn it names beside its fields (a field of the kind's own is the document's). */
  private withoutTurn(kind: MemoryKind, raw: unknown): { args: unknown; turn: { turn?: number } } {
    if (this.turns === 0 || ownsSaidInTurn(kind) || !raw || typeof raw !== 'object' || !(SAID_IN_TURN in raw))
      return { args: raw, turn: {} };
    const { [SAID_IN_TURN]: _named, ...args } = raw as Record<string, unknown>;
    return { args, turn: this.turn(insertTurnSchema.parse(raw)) };
  }

  /** The index of the turn a call names; none when it names no new turn. */
  private turn(args: { [SAID_IN_TURN]?: number | undefined }): { turn?: number } {
    const n = args[SAID_IN_TURN];
    return n !== undefined && n <= this.turns ? { turn: n - 1 } : {};
  }

  /** The arguments of an update or delete, checked, with the memory its alias names and its kind. */
  private resolve<A extends { id: string }>(
    tool: string,
    schema: z.ZodType<A>,
    raw: unknown,
    allowed: (k: MemoryKind) => boolean,
    verb: string,
  ): { error: string } | { args: A; memory: ExistingMemory; kind: MemoryKind } {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) return { error: `${tool}: ${z.prettifyError(parsed.error)}` };
    const found = this.target(tool, parsed.data.id);
    if ('error' in found) return found;
    if (!allowed(found.kind)) return { error: `${tool}: "${found.kind.name}" memories cannot be ${verb}` };
    return { args: parsed.data, ...found };
  }

  private target(tool: string, id: string): { error: string } | { memory: ExistingMemory; kind: MemoryKind } {
    const memory = this.byAlias.get(id);
    if (!memory)
      return {
        error: `${tool}: unknown id "${id}"; use an id from existing_memories (${[...this.byAlias.keys()].join(', ') || 'there are none'})`,
      };
    if (this.touched.has(memory)) return { error: `${tool}: memory "${id}" was already changed in this answer` };
    const kind = this.kinds.get(memory.kind);
    if (!kind)
      return { error: `${tool}: memory "${id}" is of kind "${memory.kind}", which this reflection does not handle` };
    return { memory, kind };
  }
}

/** A problem in the model's JSON, worded for the model: where it is, and what is wrong. */
function described(problem: JsonProblem): string {
  return problem.path.length ? `${formatPath(problem.path)} ${problem.message}` : problem.message;
}

/**
 * A document beyond what the store holds (STORED_VALUE_BOUNDS: the store API refuses it), as
 * an invalid call: the change-set writer takes what a reflection decided as it is.
 */
function storeProblem(tool: string, what: string, document: unknown): { error: string } | null {
  const problem = jsonProblem(document, STORED_VALUE_BOUNDS);
  return problem ? { error: `${tool}: ${what} is beyond what the store holds: ${described(problem)}` } : null;
}

/** Key-order-independent JSON, to compare documents. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
