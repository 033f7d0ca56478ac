import { z } from 'zod';
import { PermanentError } from '../errors.js';
import { debounceWindowSchema, kindNameSchema } from '../core/names.js';
import { namespaceTemplateSchema } from '../core/namespace-template.js';

/** OpenAI caps function names at 64 characters, and a kind's tool is `insert_<name>`. */
const MAX_KIND_NAME = 64 - 'insert_'.length;

const common = {
  name: kindNameSchema.max(
    MAX_KIND_NAME,
    `must be at most ${MAX_KIND_NAME} characters (it names the model's insert_<kind> tool, and tool names stop at 64)`,
  ),
  description: z.string().min(1).max(1_000),
  /** Namespace template, such as ["chat", "{userId}"]: filled from the thread's context. */
  namespace: namespaceTemplateSchema,
  /** zod object schema of one document; converted to JSON Schema for the model's tools. */
  schema: z.custom<z.ZodObject>((s) => s instanceof z.ZodObject, 'must be a zod object schema'),
  instructions: z.string().max(8_000).default(''),
  /** Time to live of memories of this kind (ms), renewed on every update; none when omitted. */
  ttlMs: z.number().int().positive().optional(),
  /** Top-level document fields that get embedded (one vector each); the whole document when omitted. */
  embedFields: z.array(z.string().min(1)).min(1).optional(),
  /**
   * Quiet window (ms) before turns feeding this kind are reflected; DEBOUNCE_MS when omitted.
   * A thread has one reflection for all its kinds, so the shortest window of the kinds its turns
   * feed applies.
   */
  debounceMs: debounceWindowSchema.optional(),
};

/** Many small documents per namespace, each inserted, updated or deleted by the model. */
const collectionKindSchema = z.strictObject({
  ...common,
  mode: z.literal('collection'),
  enableInserts: z.boolean().default(true),
  enableUpdates: z.boolean().default(true),
  enableDeletes: z.boolean().default(true),
  /**
   * Facts that keep their time: a memory the model deletes or rewrites is invalidated (kept, with
   * when it held) and a rewrite opens a new memory, so search can answer what held at a given
   * time (`asOf`). Off: deletes remove and updates rewrite in place.
   */
  temporal: z.boolean().default(false),
});

/**
 * One document per namespace (a user profile), created by its first patch and patched after
 * that (JSON merge patch, RFC 7396). The insert/update/delete switches do not apply: a profile
 * is always there to patch, and deleting it is an operator's act, not a model's.
 */
const profileKindSchema = z.strictObject({ ...common, mode: z.literal('profile') });

/**
 * A memory kind: the schema its documents follow and how reflections may change them.
 * Declared in TypeScript by library users (zod schema), or in a JSON/YAML file for the service
 * (kinds-file.ts). `mode` defaults to `collection`.
 */
export const kindDefinitionSchema = z.preprocess(
  (v) => (v && typeof v === 'object' && !('mode' in v) ? { ...v, mode: 'collection' } : v),
  z.discriminatedUnion('mode', [collectionKindSchema, profileKindSchema]),
);
export type CollectionKind = z.output<typeof collectionKindSchema>;
export type ProfileKind = z.output<typeof profileKindSchema>;
export type MemoryKind = CollectionKind | ProfileKind;
export type MemoryKindInput =
  (Omit<z.input<typeof collectionKindSchema>, 'mode'> & { mode?: 'collection' }) | z.input<typeof profileKindSchema>;

/** Validates a kind declaration; a bad one is a configuration error found at start. */
export function defineKind(input: MemoryKindInput): MemoryKind {
  const parsed = kindDefinitionSchema.safeParse(input);
  if (!parsed.success)
    throw new PermanentError(`invalid memory kind ${JSON.stringify(input?.name)}: ${z.prettifyError(parsed.error)}`);
  const kind = parsed.data;
  const fields = Object.keys(kind.schema.shape);
  const unknown = (kind.embedFields ?? []).filter((f) => !fields.includes(f));
  if (unknown.length)
    throw new PermanentError(
      `memory kind "${kind.name}": embedFields ${unknown.join(', ')} are not fields of its schema`,
    );
  return kind;
}

/** Several kinds for one deployment: names must be unique (they name tools and stored rows). */
export function defineKinds(inputs: (MemoryKindInput | MemoryKind)[]): MemoryKind[] {
  const kinds = inputs.map((k) => defineKind(k));
  const seen = new Set<string>();
  for (const k of kinds) {
    if (seen.has(k.name)) throw new PermanentError(`memory kind "${k.name}" is declared twice`);
    seen.add(k.name);
  }
  if (kinds.length === 0) throw new PermanentError('at least one memory kind is needed');
  return kinds;
}

export const canInsert = (k: MemoryKind) => k.mode === 'collection' && k.enableInserts;
export const canUpdate = (k: MemoryKind) => k.mode === 'collection' && k.enableUpdates;
export const canDelete = (k: MemoryKind) => k.mode === 'collection' && k.enableDeletes;
/** Consolidation merges a kind only where a model may both rewrite and delete its memories. */
export const canMerge = (k: MemoryKind): k is CollectionKind => canUpdate(k) && canDelete(k);

/** A profile's fixed key: one row per (namespace, kind), so even a bypassed check cannot make two. */
export const profileKey = (kind: Pick<ProfileKind, 'name'>) => `profile:${kind.name}`;

/** The default: LangMem's plain memory, one self-contained sentence per fact, per user. */
export const defaultKinds: MemoryKind[] = [
  defineKind({
    name: 'memory',
    description: 'A fact, preference, plan or event about the user that is worth remembering in later conversations',
    namespace: ['memories', '{userId}'],
    schema: z.object({
      content: z
        .string()
        .min(1)
        .max(2_000)
        .describe('The memory as one self-contained sentence, such as "User is vegetarian"'),
    }),
  }),
];

/** The texts to embed for a document, one per embedded field. */
export function embeddingTexts(kind: MemoryKind, document: Record<string, unknown>): { field: string; text: string }[] {
  if (!kind.embedFields) {
    const only = Object.values(document);
    const text = only.length === 1 && typeof only[0] === 'string' ? only[0] : JSON.stringify(document);
    return [{ field: '$', text }];
  }
  return kind.embedFields.flatMap((field) => {
    const v = document[field];
    if (v === undefined || v === null || v === '') return [];
    return [{ field, text: typeof v === 'string' ? v : JSON.stringify(v) }];
  });
}
