import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { checkOpenAccess } from '../src/api/access-guard.js';
import { envSchema, parseEnv } from '../src/config/env.js';
import { createLogger } from '../src/observability/logger.js';
import { loadKindsFile } from '../src/memory/kinds-file.js';
import { defaultKinds } from '../src/memory/kinds.js';

/** No Docker engine runs here, so the compose file is checked against the config schema instead. */
interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}
const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const engramServices = ['migrate', 'api', 'reflection', 'scheduler'];
const known = new Set(Object.keys(envSchema.shape));
const required = Object.entries(envSchema.shape)
  .filter(([, field]) => !field.safeParse(undefined).success)
  .map(([name]) => name);

/** A service's environment as compose fills it in, with sample values for what must be set. */
function resolved(service: Service): Record<string, string> {
  const given: Record<string, string> = {
    OPENAI_API_KEY: 'sk-test',
    API_KEYS: 'acme:acme-key-0123456789',
    ADMIN_PASSWORD: 'board-password',
  };
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([name, value]) => [
      name,
      String(value).replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_, v: string, op?: string, rest?: string) => {
        if (op === '?') return given[v] ?? '';
        return op === '-' ? (rest ?? '') : '';
      }),
    ]),
  );
}
const dockerfile = readFileSync('Dockerfile', 'utf8');

describe('docker-compose.yml', () => {
  it('has Postgres with pgvector, Redis with AOF and noeviction, a one-shot migration and every engram process', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'api',
      'migrate',
      'postgres',
      'redis',
      'reflection',
      'scheduler',
    ]);
    expect(compose.services.postgres?.image).toMatch(/^pgvector\/pgvector:/);
    const redis = compose.services.redis?.command?.join(' ') ?? '';
    expect(redis).toContain('--appendonly yes');
    expect(redis).toContain('--maxmemory-policy noeviction');
    expect(redis).toContain('--stream-node-max-bytes 256');
    for (const name of ['postgres', 'redis', 'api', 'reflection', 'scheduler'])
      expect(compose.services[name]?.healthcheck?.test.length).toBeGreaterThan(0);
  });

  it.each(['api', 'reflection', 'scheduler'])('%s: its health check asks the port it listens on', (name) => {
    const service = compose.services[name] as Service;
    const port = service.environment?.METRICS_PORT ?? service.environment?.PORT;
    expect(service.healthcheck?.test.join(' ')).toContain(`http://127.0.0.1:${port}/`);
  });

  it('the API requires API_KEYS and ADMIN_PASSWORD from whoever starts it: never open on its published port', () => {
    const api = compose.services.api as Service;
    expect(api.environment?.API_KEYS).toMatch(/^\$\{API_KEYS:\?.+\}$/);
    expect(api.environment?.ADMIN_PASSWORD).toMatch(/^\$\{ADMIN_PASSWORD:\?.+\}$/);
    expect(api.environment?.ALLOW_OPEN_ACCESS).toBeUndefined();
  });

  it.each(engramServices)('%s: its environment, as compose fills it in, parses and may start', (name) => {
    const env = parseEnv(resolved(compose.services[name] as Service));
    expect(env.HOST === '0.0.0.0' || name === 'migrate').toBe(true);
    if (name === 'api')
      expect(() =>
        checkOpenAccess(
          { host: env.HOST, port: env.PORT, keyed: !!env.API_KEYS?.length, allowOpen: env.ALLOW_OPEN_ACCESS },
          createLogger({ level: 'silent' }),
        ),
      ).not.toThrow();
    // With API_KEYS, every kind must start with {tenant} (the runtime refuses otherwise).
    const kinds = loadKindsFile(env.ENGRAM_KINDS_FILE ?? '');
    expect(kinds.map((k) => k.namespace[0])).toEqual(kinds.map(() => '{tenant}'));
  });

  it("the tenant kinds file is engram's default kind under {tenant}, and the image has it", () => {
    const [kind] = loadKindsFile('ops/tenant-kinds.yaml');
    const [plain] = defaultKinds;
    expect(kind?.namespace).toEqual(['{tenant}', ...(plain?.namespace ?? [])]);
    expect([kind?.name, kind?.description]).toEqual([plain?.name, plain?.description]);
    expect(z.toJSONSchema(kind!.schema)).toEqual(z.toJSONSchema(plain!.schema));
    expect(dockerfile).toMatch(/^COPY ops\/tenant-kinds\.yaml \.\/ops\/tenant-kinds\.yaml$/m);
  });

  it.each(engramServices)('%s: runs an existing entry with a complete, known environment', (name) => {
    const service = compose.services[name] as Service;
    const entry = service.command?.find((part) => part.startsWith('dist/workers/')) ?? '';
    expect(existsSync(entry.replace(/^dist\//, '').replace(/\.js$/, '.ts'))).toBe(true);
    const env = Object.keys(service.environment ?? {});
    expect(env.filter((v) => !known.has(v))).toEqual([]);
    expect(required.filter((v) => !env.includes(v))).toEqual([]);
    if (name !== 'migrate') expect(service.depends_on?.migrate?.condition).toBe('service_completed_successfully');
  });
});

/** No Docker engine here either: the image's default command must be able to run as it is built. */
describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const run = stages.at(-1) ?? '';

  it('the default command runs an existing entry, as the unprivileged user', () => {
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(run)?.[1] ?? '[]') as string[];
    const entry = cmd.find((part) => part.startsWith('dist/workers/')) ?? '';
    expect(existsSync(entry.replace(/^dist\//, '').replace(/\.js$/, '.ts'))).toBe(true);
    expect(run).toMatch(/^USER node$/m);
  });

  it('has the redis-server the all-in-one command starts without REDIS_URL', () => {
    expect(run).toMatch(/apt-get install [^\n]*redis-server/);
  });

  it('gives the user it runs as a data folder it can write (embedded Redis and PGlite)', () => {
    // The process' working directory is /app, and the data folders' defaults are relative to it.
    expect(run).toMatch(/^WORKDIR \/app$/m);
    const defaults = parseEnv({ OPENAI_API_KEY: 'x' });
    expect([defaults.ENGRAM_DATA_DIR, defaults.PGLITE_DATA_DIR]).toEqual(['.engram', '.engram/pgdata']);
    expect(run).toMatch(/mkdir -p \/app\/\.engram && chown node:node \/app\/\.engram/);
    expect(run.indexOf('chown node:node /app/.engram')).toBeLessThan(run.indexOf('USER node'));
  });

  it('listens on every interface, so without API_KEYS it refuses to start (ALLOW_OPEN_ACCESS aside)', () => {
    expect(run).toMatch(/^ENV [^\n]*HOST=0\.0\.0\.0/m);
  });
});
