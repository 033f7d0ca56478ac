/**
 * Writes docs/model-requests.md: the exact HTTP bodies engram sends to the model, captured from
 * the real `openai` SDK path against the stand-in model. `npm run docs:model-requests` rewrites
 * the page; test/model-requests.test.ts fails when the page and the code disagree.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createOpenAI } from '../src/llm/openai.js';
import { OpenAIChatModel } from '../src/llm/chat-model.js';
import { OpenAIEmbedder } from '../src/llm/embedder.js';
import { createLogger } from '../src/observability/logger.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { loadKindsFile } from '../src/memory/kinds-file.js';
import { MemoryManager, type ExistingMemory } from '../src/memory/manager.js';
import { PromptOptimizer } from '../src/memory/procedural/prompt-optimizer.js';
import { searchQueries } from '../src/memory/reflection-plan.js';
import { toWrites } from '../src/memory/writes.js';
import type { MemoryDb } from '../src/store/memory-db.js';
import { FakeModel, type ChatReply } from '../test/fake-model/server.js';

export const DOC_PATH = new URL('../docs/model-requests.md', import.meta.url).pathname;

export async function renderModelRequests(): Promise<string> {
  const answers: ChatReply[] = [
    {
      toolCalls: [
        {
          name: 'update_memory',
          arguments: { id: 'm1', document: { content: 'User loves ramen, especially miso ramen' }, said_in_turn: 1 },
        },
        { name: 'delete_memory', arguments: { id: 'm9', said_in_turn: 1 } },
        { name: 'patch_user_profile', arguments: { city: 'Porto' } },
        {
          name: 'update_memory',
          arguments: {
            id: 'm2',
            document: {
              technology: 'PostgreSQL',
              interest_level: 'high',
              proficiency: 'guru',
              context: 'Tunes autovacuum',
            },
          },
        },
      ],
    },
    {
      toolCalls: [
        { name: 'delete_memory', arguments: { id: 'm3', said_in_turn: 1 } },
        {
          name: 'update_memory',
          arguments: {
            id: 'm2',
            document: {
              technology: 'PostgreSQL',
              interest_level: 'high',
              proficiency: 'expert',
              context: 'Tunes autovacuum',
            },
          },
        },
      ],
    },
    {
      toolCalls: [
        {
          name: 'propose_prompt',
          arguments: {
            analysis: 'The user wants a docs link in every answer.',
            prompt: 'You help users of {product}. Always end with a link to the docs.',
          },
        },
      ],
    },
  ];
  const model = await new FakeModel((_req, i) => answers[i] as ChatReply).start();
  try {
    const log = createLogger({ level: 'silent' });
    const client = createOpenAI({ baseURL: model.url, apiKey: 'sk-...', timeoutMs: 60_000 });
    const chat = new OpenAIChatModel(client, 'gpt-4o-mini', log);
    const embedder = new OpenAIEmbedder(client, 'text-embedding-3-small', 1536);
    const kinds = [...defaultKinds, ...loadKindsFile(new URL('../test/fixtures/kinds.yaml', import.meta.url).pathname)];

    const mem = (ns: string[], key: string, kind: string, document: Record<string, unknown>): ExistingMemory => ({
      namespace: ns,
      key,
      kind,
      version: 3,
      document,
    });
    const existing = [
      mem(['memories', 'u1'], '0b7e…', 'memory', { content: 'User loves ramen' }),
      mem(['tech', 'u1'], '51c2…', 'tech_interest', {
        technology: 'PostgreSQL',
        interest_level: 'high',
        proficiency: 'advanced',
        context: 'Runs analytics on it',
      }),
      mem(['memories', 'u1'], '9f04…', 'memory', { content: 'User likes pasta' }),
      mem(['profiles', 'u1'], 'profile:user_profile', 'user_profile', { name: 'Ana', city: 'Lisbon' }),
    ];
    const earlier = [
      { role: 'user' as const, content: 'What should I cook tonight?', createdAt: '2026-05-01T18:59:02.000Z' },
    ];
    const turns = [
      {
        role: 'user' as const,
        content: 'These days I like miso ramen, and I no longer like pasta. Also: we moved to Porto!',
        createdAt: '2026-05-01T19:00:10.000Z',
      },
      { role: 'assistant' as const, content: 'Congratulations on the move!', createdAt: '2026-05-01T19:00:12.000Z' },
      {
        role: 'user' as const,
        content: 'Thanks. At work I now tune autovacuum on our PostgreSQL clusters.',
        createdAt: '2026-05-01T19:01:30.000Z',
      },
    ];

    await embedder.embed(searchQueries(turns, 8));
    const manager = new MemoryManager(chat, log);
    // The first answer has two bad calls on purpose (an invented alias, an invalid enum value), to show a repair round.
    const result = await manager.extract({ kinds, existing, earlier, turns });
    const namespaceOf = (kind: string) =>
      kind === 'tech_interest' ? ['tech', 'u1'] : kind === 'user_profile' ? ['profiles', 'u1'] : ['memories', 'u1'];
    await toWrites({ ops: result.ops, kinds, namespaceOf, embedder });

    const fakeStore = {
      get: async () => ({ version: 4, value: { prompt: 'You help users of {product}.' } }),
      isApplied: async () => false,
      apply: async () => ({
        status: 'applied',
        results: [],
        counts: { inserted: 0, updated: 1, deleted: 0, expired: 0 },
      }),
    } as unknown as MemoryDb;
    await new PromptOptimizer(fakeStore, chat, log).optimize({
      namespace: ['prompts', 'support-agent'],
      name: 'system',
      runId: 'eval-2026-05-01',
      sessions: [
        {
          messages: [
            { role: 'user', content: 'How do I reset my password?' },
            { role: 'assistant', content: 'Click "forgot password" on the sign-in page.' },
          ],
          feedback: { score: 3, comment: 'Right, but link the docs page' },
        },
      ],
    });

    const [extraction, repair, optimize] = model.chatRequests;
    const [queryEmbedding, documentEmbedding] = model.embeddingBodies;
    const [answer, repaired] = model.chatResponses.map((r) => r.choices[0]?.message);
    return page({
      extraction,
      answer,
      repairTail: repair?.messages.slice(extraction?.messages.length),
      repaired,
      optimize,
      queryEmbedding,
      documentEmbedding,
    });
  } finally {
    await model.stop();
  }
}

const json = (v: unknown) => '```json\n' + JSON.stringify(v, null, 2) + '\n```';

function page(p: Record<string, unknown>): string {
  return `# The requests engram sends to the model

Generated by \`npm run docs:model-requests\` (scripts/model-requests.ts) from the code itself: the
bodies below are what the \`openai\` SDK put on the wire, captured by the stand-in model. A test
(test/model-requests.test.ts) fails when this page and the code disagree.

Two endpoints of any OpenAI-compatible server (OpenAI, Azure OpenAI's \`/openai/v1\`, Ollama,
vLLM...): \`POST {OPENAI_BASE_URL}/chat/completions\` and \`POST {EMBEDDING_BASE_URL or
OPENAI_BASE_URL}/embeddings\`, with \`Authorization: Bearer <key>\`. Each request has its timeout
(\`LLM_TIMEOUT_MS\`, \`EMBEDDING_TIMEOUT_MS\`), within which its whole answer must arrive, body
included, and the job's AbortSignal. 408, 409, 429, 5xx, connection failures and timeouts are retried up to \`LLM_MAX_RETRIES\` times, waiting \`LLM_RETRY_BASE_MS\` x 2^n
(half of it random), or what \`retry-after-ms\` / \`retry-after\` asks if that is at most
40 x \`LLM_RETRY_BASE_MS\`; longer waits fail the attempt, and the job's backoff takes over. Other 4xx
fail the job at once (retrying would fail the same way), but for an extraction or merge prompt
refused as longer than the model's context (\`context_length_exceeded\`): that one is sent again
shorter, as below.

## 1. Extraction (one per reflection, plus one per repair round)

The kinds of this example: the default \`memory\` collection, and \`tech_interest\` (collection,
no deletes) and \`user_profile\` (profile) from test/fixtures/kinds.yaml. The tools follow:
\`insert_<kind>\` per collection kind with inserts on, \`patch_<kind>\` per profile kind (a JSON
merge patch: only the changed fields, \`null\` removes one), \`update_memory\` (the complete new
document; its schema is the kind's own when one kind can be updated, else a plain object) and
\`delete_memory\`. Existing memories appear under aliases \`m1\`, \`m2\`... (never their keys), at most
\`EXISTING_TOP_K\` per namespace, found by vector search with the recent turns; profiles appear whole.
New turns are numbered (\`turn\`); an insert, update or delete may name the one it comes from
(\`said_in_turn\`, optional): what it records holds from that turn's time, or from the last new
turn's when it names none or one that does not exist.

A reflection shows at most 200 new turns and \`CONTEXT_TURNS\` earlier ones. A prompt the model
refuses as longer than its context is sent again with half the new turns (the rest wait for a
follow-up reflection), then without earlier turns, then with the one new turn's text cut in half,
which then ends \` [cut for length: the last N of M characters are not shown]\` (the buffer keeps
it whole): at most 16 times per reflection, and a turn is not cut below 500 characters. A
consolidation merge refused so is asked again in halves of its groups.

${json(p.extraction)}

The model may answer with all its calls at once (\`parallel_tool_calls\`); the assistant message
of the response (here with two mistakes: an invented alias and a value outside the enum):

${json(p.answer)}

## 2. A repair round

Every call is parsed (JSON) and checked against its schema, the aliases and what the store holds
(no NUL or lone surrogate, at most 64 levels deep and 1,000,000 characters per document). If one
is rejected, the same conversation goes back with these messages appended; accepted calls stand
and are not repeated. A call engram cannot read as a function call (another \`type\`, no
\`function\`) is named in the last message instead; one without \`type\` is read as a function
call. An answer of more than 200 calls is refused whole: it is not repeated, and the last message
asks for at most 200. At most 2 repair rounds; then the reflection fails and writes nothing.

${json(p.repairTail)}

The corrected calls:

${json(p.repaired)}

## 3. Embeddings

The recent turns, to find relevant memories (one request, up to 8 distinct texts):

${json(p.queryEmbedding)}

The changed documents, in one batch after the model answered (the kind's \`embedFields\`, one
vector each; the whole document when it has none):

${json(p.documentEmbedding)}

## 4. Prompt optimizer (procedural memory)

${json(p.optimize)}
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(DOC_PATH, await renderModelRequests());
  process.stdout.write(`wrote ${DOC_PATH}\n`);
}
