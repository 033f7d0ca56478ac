/**
 * `npm run example:chat`: engram (the all-in-one runtime, as `npm run demo` starts it), a model,
 * and the chat example, in one process. Without OPENAI_API_KEY the model is a local stand-in
 * (stand-in-model.ts); with it, the real one (OPENAI_BASE_URL, CHAT_MODEL, EMBEDDING_*). Prints
 * curl lines to try and serves until Ctrl-C; `--once` sends them itself, prints the answers and
 * exits (the test that keeps the README true runs that). `--tools` runs the tool-using mode: the
 * model stores and searches memories itself with engram's memory tools (tool-loop.ts).
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Runtime } from '../../src/app/runtime.js';
import { parseEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/observability/logger.js';
import { parseChatConfig } from './config.js';
import { startChat } from './start.js';
import { tour, type TourStep } from './tour.js';
import { countJobs } from '../../src/queue/queues.js';

// `--schema`, `--prefix` and `--debounce-ms` let the tests run it in a schema and prefix of their own.
const { values: flags } = parseArgs({
  options: {
    once: { type: 'boolean' },
    tools: { type: 'boolean' },
    schema: { type: 'string' },
    prefix: { type: 'string' },
    'debounce-ms': { type: 'string' },
  },
});
const once = flags.once === true;
const tools = flags.tools === true;
const out = (line = '') => process.stdout.write(`${line}\n`);

const real = !!process.env.OPENAI_API_KEY;
const model = real
  ? null
  : await import('./stand-in-model.js').then(async ({ standInModel }) => {
      const { FakeModel } = await import('../../test/fake-model/server.js');
      return new FakeModel(standInModel).start();
    });
// Only where to connect and listen, and with a real model which model, come from the
// environment: a shell with a deployment's variables exported (DATABASE_SCHEMA, ENGRAM_PREFIX,
// API_KEYS, ...) must not point the example, which erases its tour's users at start, at that
// deployment's data or workers.
const modelVars = ['OPENAI_API_KEY', 'OPENAI_BASE_URL', 'CHAT_MODEL', 'EMBEDDING_MODEL', 'EMBEDDING_DIMENSIONS'];
const pass = [
  ...['REDIS_URL', 'DATABASE_URL', 'PORT', 'HOST', 'LOG_LEVEL', 'LOG_PRETTY'],
  ...(real ? [...modelVars, 'EMBEDDING_BASE_URL', 'EMBEDDING_API_KEY'] : []),
].filter((name) => process.env[name] !== undefined);
// Stand-in and real embeddings must not share tables: each mode has its own schema and prefix.
const name = real ? 'engram_chat' : 'engram_chat_standin';
const env = parseEnv({
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
  EMBEDDING_DIMENSIONS: real ? '1536' : '256',
  LOG_LEVEL: 'warn',
  ...Object.fromEntries(pass.map((v) => [v, process.env[v]])),
  DATABASE_SCHEMA: flags.schema ?? name,
  ENGRAM_PREFIX: flags.prefix ?? name.replaceAll('_', '-'),
  DEBOUNCE_MS: flags['debounce-ms'] ?? '1000',
  MAX_WAIT_MS: '10000',
  ...(model && { OPENAI_BASE_URL: model.url, OPENAI_API_KEY: 'stand-in' }),
});
const runtime = new Runtime(env, createLogger({ level: env.LOG_LEVEL, pretty: env.LOG_PRETTY }));
await runtime.migrate();
await runtime.start(['api', 'reflection', 'scheduler']);
// The tour reads as documented on every run: its users start with no memories (others keep theirs).
const tourUsers = [...new Set(tour.flatMap((step) => (step === 'settle' ? [] : [step.user_id])))];
for (const userId of tourUsers) await runtime.eraser.erase({ context: { userId } }, 'example:chat');
const address = runtime.server?.server.address();
const engramUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : env.PORT}`;

// The chat example reads engram's own settings, so that both embed with the same model.
const config = parseChatConfig({
  ...process.env,
  OPENAI_API_KEY: env.OPENAI_API_KEY,
  OPENAI_BASE_URL: env.OPENAI_BASE_URL,
  CHAT_MODEL: env.CHAT_MODEL,
  REDIS_URL: env.REDIS_URL,
  DATABASE_URL: env.DATABASE_URL,
  ENGRAM_PREFIX: env.ENGRAM_PREFIX,
  DATABASE_SCHEMA: env.DATABASE_SCHEMA,
  EMBEDDING_MODEL: env.EMBEDDING_MODEL,
  EMBEDDING_DIMENSIONS: String(env.EMBEDDING_DIMENSIONS),
  EMBEDDING_BASE_URL: env.EMBEDDING_BASE_URL,
  EMBEDDING_API_KEY: env.EMBEDDING_API_KEY,
  HOST: env.HOST,
  LOG_LEVEL: env.LOG_LEVEL,
});
const chat = await startChat(config, pino({ name: 'chat-example', level: config.LOG_LEVEL }), { tools });

out(`engram is running at ${engramUrl} (Bull Board: ${engramUrl}/admin/queues)`);
out(`model: ${model ? `local stand-in at ${model.url}` : `${env.CHAT_MODEL} at ${env.OPENAI_BASE_URL ?? 'OpenAI'}`}`);
out(`chat example: POST ${chat.url}/chat {"user_id", "prompt"} (thread chat-<user_id>)`);
out(
  tools
    ? 'mode: tools (the model stores and searches memories itself with manage_memory and search_memory; turns are enqueued too)'
    : 'mode: recall before one completion, memories formed in the background (--tools: the model manages them itself)',
);

const curl = (body: TourStep & object) =>
  `curl -X POST ${chat.url}/chat -H 'content-type: application/json' -d '${JSON.stringify(body)}'`;
const settle = async () => {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    // The chat example enqueues before it answers, so the thread's job exists by now.
    const counts = await countJobs(runtime.queues.reflection, 'failed', 'delayed', 'waiting', 'active');
    if (counts.failed) throw new Error('a reflection failed: see Bull Board');
    if ((counts.delayed ?? 0) + (counts.waiting ?? 0) + (counts.active ?? 0) === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the reflection did not finish within 60 s');
};

if (!once) {
  out('\nTry:');
  for (const step of tour)
    out(step === 'settle' ? `# wait ${env.DEBOUNCE_MS} ms (DEBOUNCE_MS) for engram to reflect, then:` : curl(step));
  out('\nServing until Ctrl-C.');
} else {
  try {
    for (const step of tour) {
      if (step === 'settle') {
        out(`... waiting for engram to reflect (DEBOUNCE_MS=${env.DEBOUNCE_MS})`);
        await settle();
        continue;
      }
      out(`\n$ ${curl(step)}`);
      const res = await fetch(`${chat.url}/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(step),
      });
      out(`${res.status} ${await res.text()}`);
    }
  } catch (err) {
    out(`example failed: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

const stop = () =>
  chat
    .close()
    .then(() => runtime.stop())
    .then(() => model?.stop());
if (once) await stop();
else for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void stop().then(() => process.exit(0)));
