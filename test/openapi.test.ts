import { validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TEST_DATABASE_URL, type Harness } from './helpers/harness.js';
import { HOSTILE_API_KEYS, HOSTILE_KEYS, tenantKind } from './helpers/hostile.js';
import { drivers, type DriverContext } from './helpers/openapi-drivers.js';
import { StallProxy } from './helpers/stall-proxy.js';

interface Document {
  paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[] }>>;
  components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> };
}

/**
 * The routes a Fastify instance serves, as `METHOD /path` with `{param}`s, from its printed
 * tree (each line: the tree's indent, a segment of the path under its parent, the methods).
 */
function servedRoutes(tree: string): string[] {
  const stack: string[] = [];
  const routes: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)[├└]── (.+) \(([A-Z, ]+)\)$/.exec(line);
    if (!m) continue;
    const depth = (m[1] as string).length / 4;
    stack.length = depth;
    stack[depth] = m[2] as string;
    const path = stack.join('').replace(/:(\w+)/g, '{$1}');
    for (const method of (m[3] as string).split(', ')) routes.push(`${method} ${path}`);
  }
  return routes;
}

describe.each([
  { mode: 'without API keys', keyed: false },
  { mode: 'with API keys and an admin password', keyed: true },
])('the OpenAPI document, $mode', ({ keyed }) => {
  const redis = new StallProxy();
  const postgres = new StallProxy(new URL(TEST_DATABASE_URL));
  let pgPort = 0;
  let h: Harness;
  let doc: Document;
  beforeAll(async () => {
    const redisUrl = await redis.start();
    const pgUrl = await postgres.start();
    pgPort = Number(new URL(pgUrl).port);
    h = await startHarness({
      roles: ['api'],
      env: {
        REDIS_URL: redisUrl,
        DATABASE_URL: pgUrl,
        // A stalled Redis is a 503 after this long (the enqueue's deadline).
        ENQUEUE_TIMEOUT_MS: '300',
        // The least a deployment may set: a history page of large documents passes it (413).
        STORE_ANSWER_MAX_BYTES: String(8 * 1024 * 1024),
        ...(keyed && { API_KEYS: HOSTILE_API_KEYS, ADMIN_PASSWORD: 'board-password' }),
      },
      runtime: keyed ? { kinds: [tenantKind] } : {},
    });
    const res = await fetch(`${h.url}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Document;
  });
  afterAll(async () => {
    redis.resume();
    if (!postgres.listening) await postgres.start(pgPort);
    await h?.stop();
    await redis.stop();
    await postgres.stop();
  });

  it('is valid OpenAPI 3.1', async () => {
    const result = await validate(structuredClone(doc) as unknown as Parameters<typeof validate>[0]);
    expect(result.valid, JSON.stringify(result)).toBe(true);
    expect((doc as { openapi?: string } & Document).openapi).toBe('3.1.0');
  });

  it('lets every free-form JSON object hold any field, so generated clients type it as such', () => {
    // An object schema that names no properties and says nothing of others is `{}` to
    // openapi-typescript: a value of `{ content }` would not type-check in a generated client.
    const closed: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.type === 'object' && !('properties' in n) && !('additionalProperties' in n)) closed.push(path);
      for (const [k, v] of Object.entries(n)) walk(v, `${path}/${k}`);
    };
    walk(doc, '');
    expect(closed).toEqual([]);
  });

  it("holds every route the API serves (not the board's and reference page's own assets)", () => {
    const served = servedRoutes(h.runtime.server?.printRoutes({ commonPrefix: false }) ?? '').filter(
      (r) =>
        // Fastify's HEAD twin of each GET, a prefix's trailing-slash twin, the plugins' insides.
        !r.startsWith('HEAD ') &&
        !/ \/(docs|admin\/queues)\/.*$/.test(r) &&
        // Outside the API the document describes: HTML pages behind the admin password, and MCP
        // (its own protocol, with its own specification; tested by test/mcp-http.test.ts).
        !/ \/(admin\/memories|mcp)(\/.*)?$/.test(r),
    );
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(served.length).toBeGreaterThan(10);
    expect(documented.sort()).toEqual([...new Set(served)].sort());
  });

  it('documents for each route exactly the statuses it answers, and each answers as documented', async () => {
    const table = drivers(keyed, keyed);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).flatMap(([m, op]) => Object.keys(op.responses).map((s) => `${m.toUpperCase()} ${path} ${s}`)),
    );
    // A status the document lists that no request here gets, or one it misses, fails here.
    expect(documented.sort()).toEqual(Object.keys(table).sort());
    const c: DriverContext = {
      url: h.url,
      model: h.model,
      auth: keyed ? { authorization: `Bearer ${HOSTILE_KEYS.acme}` } : {},
      admin: keyed ? { authorization: `Basic ${Buffer.from('admin:board-password').toString('base64')}` } : {},
    };
    const got: Record<string, number> = {};
    const run = async (down?: 'postgres' | 'redis') => {
      for (const [key, driver] of Object.entries(table)) if (driver.down === down) got[key] = await driver.send(c);
    };
    await run();
    await postgres.stop();
    try {
      await run('postgres');
    } finally {
      await postgres.start(pgPort);
    }
    redis.stall();
    try {
      await run('redis');
    } finally {
      redis.resume();
    }
    const expected = Object.fromEntries(Object.keys(table).map((k) => [k, Number(k.split(' ')[2])]));
    expect(got).toEqual(expected);
  });

  it(keyed ? 'describes the key schemes and asks for them on every /v1 route' : 'asks for no key', () => {
    const schemes = doc.components?.securitySchemes ?? {};
    const v1 = Object.entries(doc.paths)
      .filter(([p]) => p.startsWith('/v1/'))
      .flatMap(([, ops]) => Object.values(ops));
    if (!keyed) {
      expect(Object.keys(schemes)).toEqual([]);
      expect(v1.filter((op) => op.security)).toEqual([]);
      return;
    }
    expect(schemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(schemes.apiKey).toMatchObject({ type: 'apiKey' });
    for (const op of v1) expect(op.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
  });

  it('renders the reference page at /docs', async () => {
    const res = await fetch(`${h.url}/docs`);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toContain('swagger-ui');
  });
});
