/**
 * A first run with no model account: starts the all-in-one service against a local stand-in
 * model (the test double in test/fake-model), replays the seeds' ramen/pasta conversations over
 * HTTP, prints what engram remembered, then keeps serving (Bull Board at /admin/queues) until
 * Ctrl-C. `--once` exits after the conversations (used by the test that keeps the README true).
 * The product never imports the stand-in: only this script does.
 */
import { parseArgs } from 'node:util';
import { Runtime } from '../src/app/runtime.js';
import { defaultKinds, defineKind, type MemoryKind, type MemoryKindInput } from '../src/memory/kinds.js';
import { parseEnv } from '../src/config/env.js';
import { createLogger } from '../src/observability/logger.js';
import { foodieModel } from '../test/fake-model/foodie.js';
import { FakeModel } from '../test/fake-model/server.js';
import { countJobs } from '../src/queue/queues.js';

// `--schema`, `--prefix` and `--debounce-ms` let the tests run it in a schema and prefix of their own.
const { values: flags } = parseArgs({
  options: {
    once: { type: 'boolean' },
    schema: { type: 'string' },
    prefix: { type: 'string' },
    'debounce-ms': { type: 'string' },
  },
});
const once = flags.once === true;
const out = (line = '') => process.stdout.write(`${line}\n`);

const model = await new FakeModel(foodieModel).start();
// Where to connect and listen comes from the environment; nothing else does. A shell with a
// deployment's variables exported (DATABASE_SCHEMA, ENGRAM_PREFIX, API_KEYS, ...) must not point
// the demo, which erases its user at start, at that deployment's data or workers.
const fromEnv = ['REDIS_URL', 'DATABASE_URL', 'PORT', 'HOST', 'LOG_LEVEL', 'LOG_PRETTY'].filter(
  (name) => process.env[name] !== undefined,
);
const env = parseEnv({
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
  LOG_LEVEL: 'warn',
  ...Object.fromEntries(fromEnv.map((name) => [name, process.env[name]])),
  DATABASE_SCHEMA: flags.schema ?? 'engram_demo',
  ENGRAM_PREFIX: flags.prefix ?? 'engram-demo',
  EMBEDDING_DIMENSIONS: '256',
  DEBOUNCE_MS: flags['debounce-ms'] ?? '1000',
  MAX_WAIT_MS: '10000',
  OPENAI_BASE_URL: model.url,
  OPENAI_API_KEY: 'demo',
});
// The default kind, keeping its facts' time: a fact the user takes back stays, marked as no
// longer holding, so "what did they like before?" has an answer.
const kinds = [defineKind({ ...(defaultKinds[0] as MemoryKind), temporal: true } as MemoryKindInput)];
const runtime = new Runtime(env, createLogger({ level: env.LOG_LEVEL, pretty: env.LOG_PRETTY }), { kinds });
await runtime.migrate();
await runtime.start(['api', 'reflection', 'scheduler']);
const address = runtime.server?.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : env.PORT}`;
out(`engram is running at ${base} (stand-in model at ${model.url})`);
out(`Bull Board: ${base}/admin/queues`);

const send = async (threadId: string, messages: { role: string; content: string }[]) => {
  const body = { context: { userId: 'demo-user' }, messages };
  out(
    `\n$ curl -X POST ${base}/v1/threads/${threadId}/turns -H 'content-type: application/json' -d '${JSON.stringify(body)}'`,
  );
  const res = await fetch(`${base}/v1/threads/${threadId}/turns`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  out(`${res.status} ${await res.text()}`);
};
const settle = async (calls: number) => {
  out(`... waiting for the conversation to settle (DEBOUNCE_MS=${env.DEBOUNCE_MS}) and the reflection to commit`);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const counts = await countJobs(runtime.queues.reflection, 'completed', 'failed', 'delayed', 'waiting', 'active');
    if (counts.failed) throw new Error('a reflection failed: see Bull Board');
    if (
      model.chatRequests.length >= calls &&
      (counts.delayed ?? 0) + (counts.waiting ?? 0) + (counts.active ?? 0) === 0
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('reflection did not finish within 30 s');
};
const time = (iso: string) => iso.slice(11, 19);
const show = async (query: string, asOf?: string) => {
  const at = asOf ? `&asOf=${encodeURIComponent(asOf)}` : '';
  const url = `${base}/v1/memories/search?namespace=memories&namespace=demo-user&query=${encodeURIComponent(query)}${at}`;
  out(`\n$ curl '${url}'`);
  const { memories } = (await (await fetch(url)).json()) as {
    memories: {
      value: { content: string };
      version: number;
      score: number;
      validFrom: string;
      invalidAt: string | null;
    }[];
  };
  for (const m of memories) {
    const until = m.invalidAt ? ` until ${time(m.invalidAt)}` : '';
    out(
      `  - ${m.value.content}  (valid from ${time(m.validFrom)}${until}, version ${m.version}, score ${m.score.toFixed(2)})`,
    );
  }
  if (memories.length === 0) out('  (no memories)');
};

try {
  // Start clean so that the demo shows the same story every run: its user's memories, history
  // and threads go, as an erase takes them (nobody else's).
  await runtime.eraser.erase({ context: { userId: 'demo-user' } }, 'demo');
  const run = Date.now().toString(36);
  await send(`demo-1-${run}`, [{ role: 'user', content: 'I love ramen! I also like pasta.' }]);
  await send(`demo-1-${run}`, [{ role: 'assistant', content: 'Noted: ramen and pasta.' }]);
  await settle(1);
  await show('what food does the user like?');
  const between = new Date().toISOString();
  await send(`demo-2-${run}`, [{ role: 'user', content: 'These days I like miso ramen, and I no longer like pasta.' }]);
  await settle(2);
  await show('what food does the user like?');
  out(`\nWhat held after the first conversation (asOf ${between}):`);
  await show('what food does the user like?', between);
  out(`\nModel calls: ${model.chatRequests.length} (one per settled conversation); turns sent: 3.`);
} catch (err) {
  out(`demo failed: ${(err as Error).message}`);
  process.exitCode = 1;
}

if (once || process.exitCode) {
  await runtime.stop();
  await model.stop();
} else {
  out(
    '\nServing until Ctrl-C. Send your own turns with the curl lines above: the stand-in model only knows the lines about ramen and pasta, and remembers nothing from others.',
  );
  const stop = () =>
    void runtime
      .stop()
      .then(() => model.stop())
      .then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
