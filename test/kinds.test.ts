import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PermanentError } from '../src/errors.js';
import { buildTools } from '../src/memory/extraction-prompt.js';
import { defaultKinds, defineKind, defineKinds } from '../src/memory/kinds.js';
import { loadKindsFile, parseKinds } from '../src/memory/kinds-file.js';
import { fillNamespace } from '../src/core/namespace-template.js';

const fixture = new URL('./fixtures/kinds.yaml', import.meta.url).pathname;

describe('memory kinds', () => {
  it('loads kinds from a YAML file, with JSON Schema documents validated by zod', () => {
    const [tech, profile] = loadKindsFile(fixture);
    expect(tech).toMatchObject({
      name: 'tech_interest',
      mode: 'collection',
      enableInserts: true,
      enableUpdates: true,
      enableDeletes: false,
    });
    expect(profile).toMatchObject({ name: 'user_profile', mode: 'profile', namespace: ['profiles', '{userId}'] });
    const ok = {
      technology: 'PostgreSQL',
      interest_level: 'high',
      proficiency: 'advanced',
      context: 'Runs analytics on it at work',
    };
    expect(tech!.schema.safeParse(ok).success).toBe(true);
    expect(tech!.schema.safeParse({ ...ok, proficiency: 'guru' }).success).toBe(false);
    expect(tech!.schema.safeParse({ ...ok, technology: '' }).success).toBe(false);
    expect(tech!.schema.safeParse({ ...ok, mood: 'happy' }).success).toBe(false); // additionalProperties: false
    const { context: _dropped, ...missing } = ok;
    expect(tech!.schema.safeParse(missing).success).toBe(false);
  });

  it('gives the model the same JSON Schema the file declared', () => {
    const kinds = loadKindsFile(fixture);
    const tools = buildTools(kinds);
    expect(tools.map((t) => t.function.name)).toEqual(['insert_tech_interest', 'patch_user_profile', 'update_memory']);
    const insert = tools[0]!.function.parameters as { properties: Record<string, unknown>; required: string[] };
    expect(insert.required).toEqual(['technology', 'interest_level', 'proficiency', 'context']);
    expect(insert.properties.proficiency).toEqual({
      type: 'string',
      enum: ['none', 'beginner', 'intermediate', 'advanced', 'expert'],
    });
    // A profile patch: every field optional, null removes one.
    const patch = tools[1]!.function.parameters as { properties: Record<string, unknown>; required?: string[] };
    expect(patch.required ?? []).toEqual([]);
    expect(patch.properties.city).toEqual({ type: ['string', 'null'] });
  });

  it('accepts JSON as well as YAML, and a bare list of kinds', () => {
    const yamlKinds = parseKinds(readFileSync(fixture, 'utf8'), 'kinds.yaml');
    const asJson = JSON.stringify(yamlKinds.map((k) => ({ ...k, schema: z.toJSONSchema(k.schema) })));
    expect(parseKinds(asJson, 'kinds.json').map((k) => k.name)).toEqual(['tech_interest', 'user_profile']);
  });

  it.each([
    ['malformed YAML', 'kinds: [', /not valid YAML/],
    [
      'a schema that is not an object',
      'kinds: [{ name: a, description: d, namespace: [x], schema: { type: string } }]',
      /"type": "object"/,
    ],
    [
      'JSON Schema zod cannot express',
      'kinds: [{ name: a, description: d, namespace: [x], schema: { type: object, if: {}, then: {} } }]',
      /unsupported JSON Schema.*if\/then\/else/,
    ],
    ['a missing description', 'kinds: [{ name: a, namespace: [x], schema: { type: object } }]', /description/],
    [
      'a bad kind name',
      'kinds: [{ name: Recipes, description: d, namespace: [x], schema: { type: object } }]',
      /lower-case identifier/,
    ],
    [
      'switches on a profile',
      'kinds: [{ name: p, mode: profile, enableDeletes: true, description: d, namespace: [x], schema: { type: object } }]',
      /enableDeletes/,
    ],
    [
      'a duplicate name',
      'kinds: [{ name: a, description: d, namespace: [x], schema: { type: object } }, { name: a, description: e, namespace: [y], schema: { type: object } }]',
      /declared twice/,
    ],
    [
      'embedFields that are not fields',
      'kinds: [{ name: a, description: d, namespace: [x], embedFields: [body], schema: { type: object, properties: { text: { type: string } } } }]',
      /embedFields body/,
    ],
  ])('refuses %s at start with a message naming the file', (_name, text, message) => {
    const parse = () => parseKinds(text, 'bad-kinds.yaml');
    expect(parse).toThrow(PermanentError);
    expect(parse).toThrow(/bad-kinds\.yaml/);
    expect(parse).toThrow(message);
  });

  it('refuses a kinds file that cannot be read', () => {
    expect(() => loadKindsFile('/nonexistent/kinds.yaml')).toThrow(
      /ENGRAM_KINDS_FILE \/nonexistent\/kinds.yaml cannot be read/,
    );
  });

  it('fills namespace templates from the context, and names a missing variable', () => {
    expect(fillNamespace(['chat', '{userId}', 'org-{orgId}'], { userId: 'u1', orgId: 'o9' }, 'memory')).toEqual([
      'chat',
      'u1',
      'org-o9',
    ]);
    expect(() => fillNamespace(['chat', '{userId}'], { orgId: 'o9' }, 'memory')).toThrow(
      /memory kind "memory" needs context.userId for namespace \["chat","\{userId\}"\], but the thread's context has only \["orgId"\]/,
    );
  });

  it('refuses a namespace the store API could not reach once filled', () => {
    // 256 characters is the store's limit for a label; the template adds four.
    expect(() => fillNamespace(['chat', 'org-{orgId}'], { orgId: 'o'.repeat(256) }, 'memory')).toThrow(
      /memory kind "memory": namespace \["chat","org-\{orgId\}"\] filled from the thread's context is invalid/,
    );
    expect(() => fillNamespace(['chat', '{userId}'], { userId: 'u\u00001' }, 'memory')).toThrow(/must not contain NUL/);
  });

  it('refuses a kind name too long to name its tools', () => {
    const kind = (name: string) =>
      defineKind({ name, description: 'x', namespace: ['x'], schema: z.object({ a: z.string() }) });
    // insert_<name> must fit the 64 characters OpenAI allows a function name.
    expect(kind('k'.repeat(57)).name).toHaveLength(57);
    expect(() => kind('k'.repeat(58))).toThrow(/at most 57 characters \(it names the model's insert_<kind> tool/);
  });

  it('declares kinds in TypeScript with the same rules', () => {
    expect(defaultKinds[0]).toMatchObject({ name: 'memory', mode: 'collection', instructions: '' });
    expect(() => defineKinds([])).toThrow(/at least one/);
    const ttl = defineKind({
      name: 'trip',
      description: 'A trip',
      namespace: ['trips', '{userId}'],
      schema: z.object({ where: z.string() }),
      ttlMs: 86_400_000,
    });
    expect(ttl.ttlMs).toBe(86_400_000);
    expect(() => defineKind({ name: 'trip', description: 'A trip', namespace: [], schema: z.object({}) })).toThrow(
      /namespace/,
    );
  });
});
