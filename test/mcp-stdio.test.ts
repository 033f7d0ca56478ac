import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foodieModel } from './fake-model/foodie.js';
import { startHarness, TEST_DIMENSIONS, type Harness } from './helpers/harness.js';
import { exerciseEveryTool, storeProfile } from './helpers/mcp-session.js';

const KINDS_FILE = new URL('./fixtures/mcp-kinds.yaml', import.meta.url).pathname;

/** `npm run start:mcp`: the MCP server on stdio, spawned as a desktop agent spawns it. */
describe('the MCP server over stdio', () => {
  let h: Harness;
  let env: Record<string, string>;
  beforeAll(async () => {
    // The service: it reflects on what `remember` enqueues; the stdio process runs no role.
    h = await startHarness({ roles: ['reflection'], chat: foodieModel, env: { ENGRAM_KINDS_FILE: KINDS_FILE } });
    await storeProfile(h);
    env = {
      PATH: process.env.PATH ?? '',
      REDIS_URL: h.env.REDIS_URL as string,
      DATABASE_URL: h.env.DATABASE_URL as string,
      DATABASE_SCHEMA: h.env.DATABASE_SCHEMA,
      ENGRAM_PREFIX: h.env.ENGRAM_PREFIX,
      ENGRAM_KINDS_FILE: KINDS_FILE,
      OPENAI_API_KEY: 'test-key',
      OPENAI_BASE_URL: h.model.url,
      EMBEDDING_DIMENSIONS: String(TEST_DIMENSIONS),
      LOG_LEVEL: 'warn',
    };
  });
  afterAll(async () => h?.stop());

  const spawn = (args: string[]) =>
    new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', 'workers/mcp.ts', ...args],
      env,
      stderr: 'pipe',
    });

  it('lists and calls every tool and reads the profile resource, as a child process', async () => {
    const client = new Client({ name: 'engram-test', version: '1.0.0' });
    await client.connect(spawn(['--context', 'tenant=acme', '--context', 'userId=u1']));
    try {
      expect(client.getServerVersion()?.name).toBe('engram');
      await exerciseEveryTool(client, h);
    } finally {
      await client.close();
    }
  });

  it('exits 1 naming what is wrong with its command line or context', async () => {
    const run = (args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/mcp.ts', ...args], { env }).then(
        () => 'exited 0',
        (err: { code: number; stderr: string }) => `${err.code}: ${err.stderr}`,
      );
    expect(await run(['--context', 'userId'])).toMatch(/^1: engram mcp: --context "userId" is not key=value/);
    expect(await run(['--nope'])).toMatch(/^1: engram mcp: .*--nope/);
    expect(await run(['--context', 'userId=u1'])).toMatch(/^1: .*context is missing "tenant"/);
  });
});
