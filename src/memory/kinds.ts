import { z } from 'zod';
import { PermanentError } from '../errors.js';
import { kindNameSchema } from '../queue/schemas.js';

/**
 * A memory kind: the schema its documents follow and how reflections may change them.
 * Declared in TypeScript by library users (zod schema) or loaded from a file for the service.
 */
export const kindDefinitionSchema = z.strictObject({
  name: kindNameSchema,
  description: z.string().min(1).max(1_000),
  /** Namespace template, such as ["chat", "{userId}"]: filled from the thread's context. */
  namespace: z.array(z.string().min(1).max(256)).min(1).max(16),
  /** zod object schema of one document; converted to JSON Schema for the model's tools. */
  schema: z.custom<z.ZodObject>((s) => s instanceof z.ZodObject, 'must be a zod object schema'),
  instructions: z.string().max(8_000).default(''),
  mode: z.enum(['collection', 'profile']).default('collection'),
  enableInserts: z.boolean().default(true),
  enableUpdates: z.boolean().default(true),
  enableDeletes: z.boolean().default(true),
  /** Time to live of memories of this kind (ms); none when omitted. */
  ttlMs: z.number().int().positive().optional(),
  /** Top-level document fields that get embedded (one vector each); the whole document when omitted. */
  embedFields: z.array(z.string().min(1)).min(1).optional(),
});
export type MemoryKind = z.output<typeof kindDefinitionSchema>;
export type MemoryKindInput = z.input<typeof kindDefinitionSchema>;

/** Validates a kind declaration; a bad one is a configuration error found at start. */
export function defineKind(input: MemoryKindInput): MemoryKind {
  const parsed = kindDefinitionSchema.safeParse(input);
  if (!parsed.success) throw new PermanentError(`invalid memory kind ${JSON.stringify(input.name)}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** The default: LangMem's plain memory, one self-contained sentence per fact, per user. */
export const defaultKinds: MemoryKind[] = [
  defineKind({
    name: 'memory',
    description: 'A fact, preference, plan or event about the user that is worth remembering in later conversations',
    namespace: ['memories', '{userId}'],
    schema: z.object({
      content: z.string().min(1).max(2_000).describe('The memory as one self-contained sentence, such as "User is vegetarian"'),
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
