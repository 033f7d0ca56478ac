import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChatConfig } from '../examples/chat/config.js';
import type { Env } from '../src/config/env.js';
import { startChat, type RunningChat } from '../examples/chat/start.js';
import { readPrompt, type ChatHandler, type ChatRequest } from './fake-model/server.js';
import {
  cleanup,
  redisKeys,
  startHarness,
  testEnv,
  TEST_DIMENSIONS,
  waitFor,
  type Harness,
} from './helpers/harness.js';

const ANSWER = 'Serverless on AWS, Azure AI Foundry, and agent frameworks.';
const QUESTION = 'list three recommended technology topics';

/** The model: engram's reflections remember the interests; the chat example's completions get ANSWER. */
const model: ChatHandler = (request) => {
  if (!request.tools?.length) return request.messages.at(-1)?.content === 'break' ? broken : { content: ANSWER };
  const said = readPrompt(request)
    .turns.filter((t) => t.role === 'user')
    .map((t) => t.content)
    .join('\n');
  const insert = (content: string) => ({ name: 'insert_memory', arguments: { content } });
  const calls = [
    ...(said.includes('cloud services') ? ['cloud services', 'AWS', 'Azure'] : []).map((t) =>
      insert(`User is interested in ${t}`),
    ),
    ...(said.includes('AI agents') ? [insert('User is into AI agents')] : []),
  ];
  return calls.length ? { toolCalls: calls } : { content: 'no changes' };
};
const broken = { status: 400, error: 'this model cannot answer that' };
const MEMORIES = [
  'User is interested in cloud services',
  'User is interested in AWS',
  'User is interested in Azure',
  'User is into AI agents',
];

/** The seeds' application (examples/chat): recall, one completion with the memories, enqueue the turn pair. */
describe('examples/chat', () => {
  let h: Harness;
  let chat: RunningChat;
  beforeAll(async () => {
    h = await startHarness({ roles: ['reflection'], chat: model, env: { DEBOUNCE_MS: '200' } });
    const config = parseChatConfig({
      OPENAI_API_KEY: 'test-key',
      OPENAI_BASE_URL: h.model.url,
      CHAT_MODEL: 'chat-example-model',
      REDIS_URL: h.env.REDIS_URL,
      DATABASE_URL: h.env.DATABASE_URL,
      ENGRAM_PREFIX: h.env.ENGRAM_PREFIX,
      DATABASE_SCHEMA: h.env.DATABASE_SCHEMA,
      EMBEDDING_DIMENSIONS: String(TEST_DIMENSIONS),
      CHAT_PORT: '0',
    });
    chat = await startChat(config, pino({ level: 'silent' }));
  });
  afterAll(async () => {
    await chat?.close();
    await h?.stop();
  });

  const post = (body: unknown) =>
    fetch(`${chat.url}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  /** The chat example's completion requests (engram's carry tools), from `from` on. */
  const completions = (from = 0): ChatRequest[] => h.model.chatRequests.slice(from).filter((r) => !r.tools?.length);
  const ask = async (user_id: string, prompt: string) => {
    const before = h.model.chatRequests.length;
    const res = await post({ user_id, prompt });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ answer: ANSWER });
    const sent = completions(before);
    expect(sent).toHaveLength(1);
    return sent[0] as ChatRequest;
  };
  const threadKeys = async () => {
    const redis = new Redis(h.env.REDIS_URL as string);
    try {
      return (await redisKeys(redis, h.env.ENGRAM_PREFIX)).filter((k) => k.includes('chat-'));
    } finally {
      redis.disconnect();
    }
  };

  it('answers 400 naming what is wrong, and neither asks the model nor enqueues', async () => {
    const bad: [unknown, string][] = [
      [{ user_id: 'u1' }, 'prompt'],
      [{ user_id: 'u 1', prompt: 'hi' }, 'user_id'],
      [{ user_id: 'u1', prompt: '   ' }, 'must not be empty'],
      [{ user_id: 'u1', prompt: 'a\u0000b' }, 'NUL'],
      [{ user_id: 'u1', prompt: 'a\ud800b' }, 'lone surrogates'],
      [{ user_id: 'u1', prompt: 'x'.repeat(8_001) }, 'prompt'],
      [{ user_id: 'u1', prompt: 'hi', extra: 1 }, 'extra'],
      [{ user_id: ['u1'], prompt: 'hi' }, 'user_id'],
      ['{"user_id": "u1", "prompt": ', ''],
    ];
    for (const [body, names] of bad) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(JSON.stringify(await res.json())).toContain(names);
    }
    expect(h.model.chatRequests).toHaveLength(0);
    expect(await threadKeys()).toEqual([]);
  });

  it('a failed completion is a 502 and the turn is not remembered', async () => {
    const res = await post({ user_id: 'u3', prompt: 'break' });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toContain('this model cannot answer that');
    expect(await threadKeys()).toEqual([]);
  });

  it("answers the third request with the memories formed from the first two, and a new user's with none", async () => {
    const first = await ask('u1', 'I am interested in cloud services, AWS and Azure.');
    expect(first.model).toBe('chat-example-model');
    expect(first.messages[0]!.content).toContain('You do not remember anything about this user yet.');
    await ask('u1', 'These days I am into AI agents.');

    // The thread chat-u1 reflects once it has been quiet for DEBOUNCE_MS.
    const formed = await waitFor(
      async () => {
        const found = await h.runtime.recall.search({ namespace: ['memories', 'u1'], query: 'technology' });
        return found.length === MEMORIES.length ? found : null;
      },
      { timeoutMs: 30_000 },
    );
    expect(formed.map((m) => m.value.content).sort()).toEqual([...MEMORIES].sort());
    // engram saw each turn pair as the chat example enqueued it: the prompt, then the answer.
    const reflected = h.model.chatRequests.filter((r) => r.tools?.length).flatMap((r) => readPrompt(r).turns);
    expect(reflected.map((t) => [t.role, t.content])).toEqual([
      ['user', 'I am interested in cloud services, AWS and Azure.'],
      ['assistant', ANSWER],
      ['user', 'These days I am into AI agents.'],
      ['assistant', ANSWER],
    ]);
    expect((await threadKeys()).some((k) => k.includes('chat-u1'))).toBe(true);

    const third = await ask('u1', QUESTION);
    expect(third.messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(third.messages[1]!.content).toBe(QUESTION);
    const block = /<memories>\n([\s\S]*)\n<\/memories>/.exec(third.messages[0]!.content ?? '')?.[1] ?? '';
    const recalled = [...block.matchAll(/<memory kind="memory" updated="[\d-]+">(.*?)<\/memory>/g)].map((m) => m[1]);
    expect(recalled.sort()).toEqual([...MEMORIES].sort());

    const stranger = await ask('u2', QUESTION);
    expect(stranger.messages[0]!.content).not.toContain('<memor');
    expect(stranger.messages[0]!.content).toContain('You do not remember anything about this user yet.');
  });
});

/**
 * `examples/chat/run.ts --once [flags]` in its own schema and prefix (given as flags: the
 * environment carries a deployment's, which it must leave alone); the answers it printed.
 */
async function playTour(env: Env, deployment: Env, flags: string[]): Promise<string[]> {
  const own = ['--schema', env.DATABASE_SCHEMA, '--prefix', env.ENGRAM_PREFIX, '--debounce-ms', '200'];
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'examples/chat/run.ts', '--once', ...own, ...flags],
    {
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: env.DATABASE_URL,
        REDIS_URL: env.REDIS_URL,
        PORT: '0',
        CHAT_PORT: '0',
        DATABASE_SCHEMA: deployment.DATABASE_SCHEMA,
        ENGRAM_PREFIX: deployment.ENGRAM_PREFIX,
        DEBOUNCE_MS: '30000',
        API_KEYS: 'secret-key',
      },
      timeout: 90_000,
    },
  );
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('200 '))
    .map((l) => (JSON.parse(l.slice(4)) as { answer: string }).answer);
}

/**
 * Keeps the README's commands true: `npm run example:chat` runs engram, the stand-in and the
 * example; `-- --tools` its tool-using mode, where the model stores and searches memories itself
 * and turns are enqueued as well. Both in one schema, as a newcomer runs one after the other.
 */
describe('npm run example:chat', () => {
  const env = testEnv('http://unused.invalid/v1');
  const deployment = testEnv('http://unused.invalid/v1');
  afterAll(async () => {
    await cleanup(env);
    await cleanup(deployment);
  });

  it('plays the technology conversation against the stand-in model', async () => {
    const answers = await playTour(env, deployment, []);
    expect(answers).toHaveLength(4);
    const [, , u1, u2] = answers as [string, string, string, string];
    for (const interest of ['cloud services', 'AWS', 'Azure', 'AI agents'])
      expect(u1).toContain(`User is interested in ${interest}`);
    expect(u2).toContain('I do not remember anything about you yet.');
  });

  it('--tools, after it: stores what the user says with manage_memory, finds it with search_memory, and reflection adds no duplicate', async () => {
    // The tour's users start with no memories on every run, whatever an earlier one left.
    const answers = await playTour(env, deployment, ['--tools']);
    expect(answers).toHaveLength(4);
    const [first, second, u1, u2] = answers as [string, string, string, string];
    expect(first).toContain('I will remember that (3 new memories)');
    expect(second).toContain('I will remember that (1 new memory)');
    for (const interest of ['cloud services', 'AWS', 'Azure', 'AI agents'])
      expect(u1).toContain(`User is interested in ${interest}`);
    expect(u2).toContain('I do not remember anything about you yet.');
    // The tour waited for the reflection of u1's turns, which saw the tools' memories as existing.
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 1 });
    try {
      const { rows } = await pool.query<{ content: string }>(
        `select m.value->>'content' as content from "${env.DATABASE_SCHEMA}".memories m order by 1`,
      );
      expect(rows.map((r) => r.content)).toEqual([
        'User is interested in AI agents',
        'User is interested in AWS',
        'User is interested in Azure',
        'User is interested in cloud services',
      ]);
      // The deployment whose variables were exported was never touched.
      const schema = await pool.query<{ ns: string | null }>('select to_regnamespace($1)::text as ns', [
        deployment.DATABASE_SCHEMA,
      ]);
      expect(schema.rows[0]?.ns).toBeNull();
    } finally {
      await pool.end();
    }
  });
});
