import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { startHarness, TEST_DATABASE_URL, TEST_REDIS_URL, uniqueName, waitFor } from './helpers/harness.js';

const run = promisify(execFile);
const repo = resolve('.');
const MARKER = '<!-- test: sdk-example';

/** The ```ts block after each `<!-- test: <mark> ... -->` comment of a markdown file. */
async function markedExamples(file: string, mark = 'sdk-example'): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const marked = new RegExp(`<!-- test: ${mark}[^>]*-->\\s*\`\`\`ts\\n([\\s\\S]*?)\`\`\``, 'g');
  return [...text.matchAll(marked)].map((m) => m[1] as string);
}

/**
 * The consumer's lockfile: the tarball, plus engram's production dependencies at the versions
 * this repository's lockfile holds (its overrides included), so that `npm ci --offline`
 * installs from the npm cache that this repository's own `npm ci` filled.
 */
async function consumerLock(spec: string): Promise<object> {
  const own = JSON.parse(await readFile('package-lock.json', 'utf8')) as {
    packages: Record<string, { dev?: boolean; link?: boolean }>;
  };
  const pkg = JSON.parse(await readFile('package.json', 'utf8')) as Record<string, unknown>;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { engram: spec } },
    'node_modules/engram': {
      version: pkg.version,
      resolved: spec,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [path, entry] of Object.entries(own.packages))
    if (path && !entry.dev && !entry.link) packages[path] = entry;
  return { name: 'consumer', lockfileVersion: 3, requires: true, packages };
}

/** Answers a turn that says "vegetarian" the way a good model would. */
const dietModel: ChatHandler = (request) =>
  readPrompt(request)
    .turns.map((t) => t.content)
    .join(' ')
    .includes('vegetarian')
    ? { toolCalls: [{ name: 'insert_memory', arguments: { content: 'User is vegetarian' } }] }
    : { content: 'no changes' };

describe('the npm package', () => {
  let dir = '';
  let app = '';
  let tarball = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'engram-pack-'));
    app = join(dir, 'app');
    // prepack builds dist/ first, as `npm publish` or a git install would.
    const { stdout } = await run('npm', ['pack', '--pack-destination', dir, '--silent'], { cwd: repo });
    tarball = stdout.trim().split('\n').at(-1) as string;
    const spec = `file:../${tarball}`;
    await mkdir(app);
    await writeFile(
      join(app, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { engram: spec } }),
    );
    await writeFile(join(app, 'package-lock.json'), JSON.stringify(await consumerLock(spec)));
    await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app });
  }, 120_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ships the built code, its types and the README, and no tests, benches, docs or sources', async () => {
    const { stdout } = await run('tar', ['-tzf', join(dir, tarball)]);
    const files = stdout.split('\n').filter(Boolean);
    for (const file of [
      'package/README.md',
      'package/package.json',
      'package/dist/src/index.js',
      'package/dist/src/index.d.ts',
      'package/dist/src/sdk/index.js',
      'package/dist/src/sdk/index.d.ts',
      'package/dist/src/client/index.js',
      'package/dist/src/client/index.d.ts',
      'package/dist/workers/all-in-one.js',
      'package/dist/workers/migrate.js',
    ])
      expect(files).toContain(file);
    expect(files.filter((f) => /^package\/(test|bench|docs|scripts|src|workers|ops)\//.test(f))).toEqual([]);
    expect(files.filter((f) => /^package\/dist\/(test|bench|scripts)\//.test(f))).toEqual([]);
  });

  it('marks SDK examples in the README and docs/sdk.md, each importing engram/sdk', async () => {
    for (const file of ['README.md', 'docs/sdk.md']) {
      const examples = await markedExamples(file);
      expect(examples.length, `${file}: ${MARKER} ... --> before a \`\`\`ts block`).toBeGreaterThan(0);
      for (const example of examples) expect(example).toContain("from 'engram/sdk'");
    }
  });

  it("builds every EngramClient of the docs from the service's variables, so that it finds the service", async () => {
    // A client without the service's prefix, schema or embedding endpoint waits for settings no
    // service publishes, or searches vectors of another model: each example must pass all of them.
    const needed = ['ENGRAM_PREFIX', 'DATABASE_SCHEMA', 'OPENAI_API_KEY!', 'OPENAI_BASE_URL'];
    for (const [file, marks] of [
      ['README.md', ['sdk-example']],
      ['docs/sdk.md', ['sdk-example', 'typecheck']],
      ['docs/memory-tools.md', ['typecheck']],
    ] as const) {
      const examples = (await Promise.all(marks.map((mark) => markedExamples(file, mark)))).flat();
      const clients = examples.filter((example) => example.includes('new EngramClient({'));
      expect(clients.length, file).toBeGreaterThan(0);
      for (const example of clients)
        for (const variable of needed)
          expect(example, `${file}: process.env.${variable}`).toContain(`process.env.${variable}`);
    }
  });

  it('type-checks the examples against the installed types (strict, NodeNext)', async () => {
    const examples = [
      ...(await markedExamples('README.md')),
      ...(await markedExamples('docs/sdk.md')),
      // Type-checked only (they call a real chat model): the prompt optimizer, the memory tools' loops.
      ...(await markedExamples('docs/sdk.md', 'typecheck')),
      ...(await markedExamples('docs/memory-tools.md', 'typecheck')),
      ...(await markedExamples('docs/http-client.md', 'typecheck')),
    ];
    expect(examples.length).toBeGreaterThan(4);
    const files = await Promise.all(
      examples.map(async (example, i) => {
        const file = join(app, `example-${i}.ts`);
        await writeFile(file, example);
        return file;
      }),
    );
    const program = ts.createProgram(files, {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      // What `tsc --init` turns on besides (TypeScript 5.9): an example must compile in a new project.
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      typeRoots: [join(repo, 'node_modules/@types')],
    });
    const errors = ts
      .getPreEmitDiagnostics(program)
      .map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(errors).toEqual([]);
  });

  it('runs the examples against a running engram: the turn reaches its reflection, the search finds what it formed', async () => {
    const h = await startHarness({ roles: ['reflection'], chat: dietModel, env: { EMBEDDING_DIMENSIONS: '1536' } });
    onTestFinished(() => h.stop());
    const env = {
      PATH: process.env.PATH ?? '',
      REDIS_URL: TEST_REDIS_URL,
      DATABASE_URL: TEST_DATABASE_URL,
      ENGRAM_PREFIX: h.env.ENGRAM_PREFIX,
      DATABASE_SCHEMA: h.env.DATABASE_SCHEMA,
      OPENAI_API_KEY: 'test-key',
      OPENAI_BASE_URL: h.model.url,
    };
    const examples = [...(await markedExamples('README.md')), ...(await markedExamples('docs/sdk.md'))];
    // Plain node on what a user's compiler would emit: the types are checked above.
    const scripts = await Promise.all(
      examples.map(async (example, i) => {
        const file = join(app, `example-${i}.mjs`);
        const js = ts.transpileModule(example, {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        });
        await writeFile(file, js.outputText);
        return file;
      }),
    );
    const runExample = (file: string) => run(process.execPath, [file], { cwd: app, env });

    await runExample(scripts[0] as string);
    const formed = await waitFor(async () => {
      const items = await h.runtime.storeApi.search({ namespacePrefix: ['memories', 'u1'] });
      return items.length ? items : null;
    });
    expect(formed.map((m) => m.value)).toEqual([{ content: 'User is vegetarian' }]);
    for (const script of scripts) {
      const { stdout } = await runExample(script);
      expect(stdout).toContain('User is vegetarian');
    }
  });

  /** The installed engram-migrate on a schema of its own (dropped after the test), with `env` added. */
  const migrateInstalled = async (env: Record<string, string>) => {
    const schema = uniqueName('pack');
    const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1 });
    onTestFinished(async () => {
      await pool.query(`drop schema if exists "${schema}" cascade`);
      await pool.end();
    });
    const { stdout } = await run(join(app, 'node_modules/.bin/engram-migrate'), [], {
      cwd: app,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema, ...env },
    });
    const { rows } = await pool.query(
      'select count(*)::int as n from information_schema.tables where table_schema = $1',
      [schema],
    );
    return { stdout, tables: rows[0].n as number };
  };

  it('installs the engram-migrate command, which migrates a schema from the built workers', async () => {
    const migrated = await migrateInstalled({
      LOG_LEVEL: 'warn',
      // The service's settings, bad or unfit for one shard, are not the migration's to refuse.
      CONSOLIDATION_CRON: 'bogus',
      REDIS_URL: 'redis+cluster://127.0.0.1:1',
      ENGRAM_PREFIX: 'no-tag',
    });
    expect(migrated.tables).toBeGreaterThan(0);
  });

  it('logs JSON with a warning when LOG_PRETTY asks for pino-pretty, which an install of the package lacks', async () => {
    // It crashed every process at start: "unable to determine transport target for pino-pretty".
    const { stdout, tables } = await migrateInstalled({ LOG_LEVEL: 'warn', LOG_PRETTY: 'true' });
    expect(tables).toBeGreaterThan(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(lines[0]).toMatchObject({ level: 40, msg: expect.stringContaining('pino-pretty is not installed') });
  });
});
