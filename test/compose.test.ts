import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { envSchema } from '../src/config/env.js';

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
    for (const name of ['postgres', 'redis', 'api'])
      expect(compose.services[name]?.healthcheck?.test.length).toBeGreaterThan(0);
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
