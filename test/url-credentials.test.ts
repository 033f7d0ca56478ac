import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseEnv } from '../src/config/env.js';
import { withoutCredentials } from '../src/core/url-credentials.js';
import { startTracing } from '../src/observability/tracing.js';

const minimal = { REDIS_URL: 'redis://127.0.0.1:6379', OPENAI_API_KEY: 'k' };
const SECRET = 'S3cret-pa55';

/** parseEnv's message for `env`, or '' when it parses. */
function problemsOf(env: Record<string, string>): string {
  try {
    parseEnv({ ...minimal, ...env });
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * A URL refused at start (a mistyped scheme) was echoed whole, password included, to stderr: a
 * supervisor's log, journald, a CI job's output.
 */
describe('a URL in a message or a log line', () => {
  it('keeps its scheme and host but not its user and password', () => {
    expect(withoutCredentials(`postgress://admin:${SECRET}@db:5432/x`)).toBe('postgress://***@db:5432/x');
    expect(withoutCredentials(`redis://:${SECRET}@h:6379`)).toBe('redis://***@h:6379');
    // Unencoded, a password may hold / and @: everything up to the last @ goes.
    expect(withoutCredentials(`postgres://u:a/b@c${SECRET}@h/db`)).toBe('postgres://***@h/db');
    expect(withoutCredentials(`u:${SECRET}@h:5432`)).toBe('***@h:5432');
    expect(withoutCredentials('http://127.0.0.1:4318')).toBe('http://127.0.0.1:4318');
  });

  it('a refused variable is named without its password', () => {
    for (const [name, value] of [
      ['DATABASE_URL', `postgress://admin:${SECRET}@db:5432/x`],
      ['DATABASE_READ_URL', `postgres://r@h/x,mysql://u:${SECRET}@h/x`],
      ['REDIS_URL', `rediss+clustr://:${SECRET}@h:6379`],
      ['REDIS_URL', `http://u:${SECRET}@h`],
      ['OPENAI_BASE_URL', `htps://u:${SECRET}@x/v1`],
      ['EMBEDDING_BASE_URL', `ftp://u:${SECRET}@x/v1`],
      ['OTEL_EXPORTER_OTLP_ENDPOINT', `grpc://u:${SECRET}@collector:4317`],
    ] as const) {
      const message = problemsOf({
        [name]: value,
        ...(name === 'DATABASE_READ_URL' ? { DATABASE_URL: 'postgres://h/x' } : {}),
      });
      expect(message, value).toMatch(new RegExp(`  ${name}(\\.\\d)?: must be a URL .*\\*\\*\\*@`));
      expect(message, value).not.toContain(SECRET);
    }
  });

  it('npm run migrate with a mistyped DATABASE_URL exits 1 without printing its password', async () => {
    const err = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/migrate.ts'], {
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: `postgress://admin:${SECRET}@127.0.0.1:5432/test` },
      timeout: 20_000,
    }).then(
      () => null,
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('DATABASE_URL: must be a URL with postgres(ql)? protocol, got "postgress://***@');
    expect(`${err?.stdout}${err?.stderr}`).not.toContain(SECRET);
  }, 30_000);

  it("tracing's start line names the collector without its credentials", async () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s.trim()) });
    const tracing = await startTracing(
      { endpoint: `http://user:${SECRET}@127.0.0.1:1`, serviceName: 'engram-test' },
      log,
    );
    await tracing?.shutdown();
    expect(lines.join('\n')).toContain('"endpoint":"http://***@127.0.0.1:1"');
    expect(lines.join('\n')).not.toContain(SECRET);
  });
});
