import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopback } from '../src/api/access-guard.js';
import { parseEnv } from '../src/config/env.js';
import { cleanup, startHarness, testEnvVars, type Harness } from './helpers/harness.js';
import { tenantKind } from './helpers/hostile.js';

const REFUSED = /HOST is 0\.0\.0\.0, not a loopback address, and API_KEYS is unset: .*ALLOW_OPEN_ACCESS=true/;

/** Without keys the API is open to whoever reaches it: only on loopback, unless said out loud. */
describe('open access', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('tells loopback addresses from the rest', () => {
    for (const host of ['127.0.0.1', '127.4.5.6', '::1', '[::1]', '::ffff:127.0.0.1', 'localhost'])
      expect([host, isLoopback(host)]).toEqual([host, true]);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', '::ffff:10.0.0.1', 'engram.internal', ''])
      expect([host, isLoopback(host)]).toEqual([host, false]);
  });

  it('the API process refuses to listen beyond loopback without API_KEYS, and says what to do', async () => {
    const vars = testEnvVars('http://127.0.0.1:9/v1', { HOST: '0.0.0.0', LOG_LEVEL: 'info' });
    try {
      const err = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/api.ts'], {
        env: { PATH: process.env.PATH ?? '', ...vars },
      }).then(
        () => null,
        (e: { code: number; stdout: string }) => e,
      );
      expect(err?.code).toBe(1);
      expect(err?.stdout).toMatch(REFUSED);
    } finally {
      await cleanup(parseEnv(vars));
    }
  });

  it('the same start fails in a runtime, and nothing listens', async () => {
    await expect(startHarness({ roles: ['api'], env: { HOST: '0.0.0.0' } })).rejects.toThrow(REFUSED);
  });

  it('listens beyond loopback with ALLOW_OPEN_ACCESS=true', async () => {
    h = await startHarness({ roles: ['api'], env: { HOST: '0.0.0.0', ALLOW_OPEN_ACCESS: 'true' } });
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it('listens beyond loopback with API_KEYS, and then /v1 needs a key', async () => {
    h = await startHarness({
      roles: ['api'],
      env: { HOST: '0.0.0.0', API_KEYS: 'acme:acme-key-0123456789', ADMIN_PASSWORD: 'board-password' },
      runtime: { kinds: [tenantKind] },
    });
    expect((await fetch(`${h.url}/v1/memories/search?namespace=acme&query=x`)).status).toBe(401);
  });

  it('a worker process may serve its metrics beyond loopback without keys (no memories there)', async () => {
    h = await startHarness({ roles: ['reflection'], env: { HOST: '0.0.0.0', METRICS_PORT: '0' } });
    const address = h.runtime.metricsServer?.server.address();
    const port = address && typeof address === 'object' ? address.port : 0;
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });
});
