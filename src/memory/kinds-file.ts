import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PermanentError } from '../errors.js';
import { defineKinds, type MemoryKind } from './kinds.js';

/**
 * A kinds file (JSON or YAML, `ENGRAM_KINDS_FILE`): the service's way to declare what
 * TypeScript users declare with `defineKind`. Document schemas are JSON Schema objects, turned
 * into zod with `z.fromJSONSchema` (zod 4.1+): one validator for the model's tool arguments and
 * for stored documents, the same as for kinds declared in code. It rejects what zod cannot
 * express (if/then/else, dependentRequired, external $ref) with a message, at start.
 */
const jsonSchemaObject = z
  .record(z.string(), z.unknown())
  .refine((s) => s.type === 'object', 'must be a JSON Schema with "type": "object" (a document is an object)');

const fileKindSchema = z
  .looseObject({ name: z.string(), schema: jsonSchemaObject })
  .describe('a memory kind; see MemoryKindInput for the other fields');

const kindsFileSchema = z.union([z.array(fileKindSchema), z.strictObject({ kinds: z.array(fileKindSchema) })]);

/** Parses kinds from file text; `source` names the file in errors. */
export function parseKinds(text: string, source: string): MemoryKind[] {
  let raw: unknown;
  try {
    raw = source.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new PermanentError(
      `${source}: not valid ${source.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const parsed = kindsFileSchema.safeParse(raw);
  if (!parsed.success) throw new PermanentError(`${source}: ${z.prettifyError(parsed.error)}`);
  const entries = Array.isArray(parsed.data) ? parsed.data : parsed.data.kinds;
  const inputs = entries.map((entry) => ({
    ...entry,
    schema: toZodObject(entry.schema, `${source}: kind "${entry.name}"`),
  }));
  try {
    return defineKinds(inputs as Parameters<typeof defineKinds>[0]);
  } catch (err) {
    throw new PermanentError(`${source}: ${(err as Error).message}`, { cause: err });
  }
}

export function loadKindsFile(path: string): MemoryKind[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PermanentError(`ENGRAM_KINDS_FILE ${path} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  return parseKinds(text, path);
}

function toZodObject(schema: Record<string, unknown>, where: string): z.ZodObject {
  let converted: z.ZodType;
  try {
    converted = z.fromJSONSchema(schema);
    // The tools are generated back from it: fail at start, not on the first reflection.
    z.toJSONSchema(converted, { target: 'draft-7', io: 'input' });
  } catch (err) {
    throw new PermanentError(`${where}: unsupported JSON Schema: ${(err as Error).message}`, { cause: err });
  }
  if (!(converted instanceof z.ZodObject))
    throw new PermanentError(`${where}: the schema must describe a plain object (no anyOf/allOf at the top)`);
  return converted;
}
