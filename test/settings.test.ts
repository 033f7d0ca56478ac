import { describe, expect, it } from 'vitest';
import { envSchema, parseEnv } from '../src/config/env.js';
import { publishedSettingsSchema, settingsOf } from '../src/config/published-settings.js';
import { settings, type SettingKey } from '../src/config/settings.js';
import { InputError } from '../src/errors.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { EngramClient } from '../src/sdk/client.js';
import { clientOptionsSchema } from '../src/sdk/options.js';

/**
 * The settings a service's environment and the SDK's options share must not drift apart: each
 * bad value is refused by both with the same message, each boundary value taken by both, and
 * each default the same (or, for a setting the service publishes, what it publishes).
 */
const minimalEnv = { REDIS_URL: 'redis://127.0.0.1:6379', OPENAI_API_KEY: 'k' };
const minimalSdk = { redisUrl: 'redis://127.0.0.1:6379' };

/** Values of each setting as the SDK takes them; the environment gets their text. */
const cases: Record<SettingKey, { bad: unknown[]; good: unknown[] }> = {
  redisUrl: {
    bad: [
      'http://127.0.0.1:6379',
      'not a url',
      'redis+sentinel://a:1',
      'redis+cluster://a:7001,,b:7001',
      'redis+cluster://a:70010',
      'redis+cluster://a:7001/2',
    ],
    good: [
      'rediss://cache.example:6380/2',
      'rediss+cluster://user:pw@cache.example:7001',
      'redis+cluster://c1.example:7001,c2.example:7001,[::1]:7003',
    ],
  },
  redisShards: { bad: [0, 129, 2.5], good: [1, 128] },
  databaseUrl: { bad: ['mysql://db/x'], good: ['postgresql://u@db:5432/x'] },
  databaseReadUrl: {
    bad: [['mysql://db/x'], [], Array.from({ length: 17 }, (_, i) => `postgres://r${i}/x`)],
    good: [['postgresql://u@r1:5433/x', 'postgres://r2/x']],
  },
  prefix: { bad: ['with space', 'x'.repeat(65)], good: ['{engram}', 'x'.repeat(64)] },
  schema: { bad: ['Engram', '1st', 'x'.repeat(64)], good: ['_e2', 'x'.repeat(63)] },
  debounceMs: { bad: [-1, 1.5], good: [0] },
  maxWaitMs: { bad: [0], good: [1] },
  policy: { bad: ['later'], good: ['rollback'] },
  enqueueTimeoutMs: { bad: [9, 600_001], good: [10, 600_000] },
  queryEmbeddingTimeoutMs: { bad: [99, 600_001, 1.5], good: [100, 600_000] },
  reflectionAttempts: { bad: [0, 101], good: [1, 100] },
  reflectionBackoffMs: { bad: [-1], good: [0] },
  indexFields: { bad: [[], ['a..b']], good: [['title', 'sections[*].text']] },
  defaultTtlMs: { bad: [0], good: [1] },
  refreshTtlOnRead: { bad: ['sometimes'], good: [false] },
  answerMaxBytes: { bad: [8 * 1024 * 1024 - 1, 256 * 1024 * 1024 + 1], good: [8 * 1024 * 1024, 256 * 1024 * 1024] },
  // An empty model name is how the environment says "unset": nothing else is refused.
  embeddingModel: { bad: [], good: ['nomic-embed-text'] },
  embeddingDimensions: { bad: [0, 16_001], good: [1, 16_000] },
  embeddingBaseUrl: { bad: ['ftp://models'], good: ['http://127.0.0.1:11434/v1'] },
};

const text = (value: unknown) => (Array.isArray(value) ? value.join(',') : String(value));
const sdkPath = (key: SettingKey) => ((settings[key] as { sdk?: string }).sdk ?? key).split('.');

function sdkOptions(key: SettingKey, value: unknown): Record<string, unknown> {
  const [first, second] = sdkPath(key) as [string, string | undefined];
  if (!second) return { ...minimalSdk, [first]: value };
  return { ...minimalSdk, [first]: { ...(first === 'embedding' ? { apiKey: 'k' } : {}), [second]: value } };
}

/** The messages of the issues about one setting, on each side. */
function refusals(key: SettingKey, value: unknown): { env: string[]; sdk: string[] } {
  // DEBOUNCE_MS=0: the environment's default window would also refuse a short MAX_WAIT_MS.
  const env = envSchema.safeParse({ ...minimalEnv, DEBOUNCE_MS: '0', [settings[key].env]: text(value) });
  const sdk = clientOptionsSchema.safeParse(sdkOptions(key, value));
  const path = sdkPath(key);
  return {
    env: (env.error?.issues ?? []).filter((i) => i.path[0] === settings[key].env).map((i) => i.message),
    sdk: (sdk.error?.issues ?? []).filter((i) => path.every((label, n) => i.path[n] === label)).map((i) => i.message),
  };
}

describe('settings shared by the environment and the SDK', () => {
  it('has cases for every shared setting', () => {
    expect(Object.keys(cases).sort()).toEqual(Object.keys(settings).sort());
  });

  it.each(Object.keys(settings) as SettingKey[])('%s: the same bad values are refused with the same message', (key) => {
    for (const value of cases[key].bad) {
      const { env, sdk } = refusals(key, value);
      expect(env.length, `${settings[key].env}=${text(value)}`).toBeGreaterThan(0);
      expect(sdk, `${key}: ${JSON.stringify(value)}`).toEqual(env);
    }
    for (const value of cases[key].good)
      expect(refusals(key, value), JSON.stringify(value)).toEqual({ env: [], sdk: [] });
  });

  it('has the same defaults; a setting the service publishes has none in the SDK, and is published as its default', () => {
    const env = parseEnv({ OPENAI_API_KEY: 'k' }) as Record<string, unknown>;
    const sdk = clientOptionsSchema.parse({ ...minimalSdk, embedding: { apiKey: 'k' } }) as Record<string, unknown>;
    const published = settingsOf(parseEnv(minimalEnv), defaultKinds) as Record<string, unknown>;
    for (const [key, definition] of Object.entries(settings) as [SettingKey, (typeof settings)[SettingKey]][]) {
      const d = definition as { env: string; default?: unknown; published?: true; sdkRequired?: true; agreed?: true };
      const inSdk = sdkPath(key).reduce<unknown>((v, label) => (v as Record<string, unknown>)[label], sdk);
      expect(env[d.env], d.env).toEqual(d.default);
      if (d.published) {
        expect(inSdk, key).toBeUndefined();
        expect(published[key], key).toEqual(d.default);
      } else if (d.agreed) {
        // Left out of the publication at its default, so that older SDKs keep reading it.
        expect(inSdk, key).toBeUndefined();
        expect(key in published, key).toBe(false);
      } else if (!d.sdkRequired) expect(inSdk, key).toEqual(d.default);
    }
  });

  it('checks maxWait against the debounce window on both sides, and in what the service publishes', () => {
    expect(() => parseEnv({ ...minimalEnv, DEBOUNCE_MS: '5000', MAX_WAIT_MS: '1000' })).toThrow(
      /MAX_WAIT_MS: must be at least DEBOUNCE_MS/,
    );
    const sdk = (() => {
      try {
        return new EngramClient({ ...minimalSdk, debounceMs: 5000, maxWaitMs: 1000 });
      } catch (err) {
        return err;
      }
    })();
    expect(sdk).toBeInstanceOf(InputError);
    expect((sdk as Error).message).toMatch(/must be at least debounceMs[\s\S]*maxWaitMs/);
    const base = settingsOf(parseEnv(minimalEnv), defaultKinds);
    expect(publishedSettingsSchema.safeParse({ ...base, debounceMs: 5000, maxWaitMs: 1000 }).error?.issues).toEqual([
      expect.objectContaining({ path: ['maxWaitMs'], message: 'must be at least debounceMs' }),
    ]);
  });
});
