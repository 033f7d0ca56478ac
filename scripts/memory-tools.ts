/**
 * Writes docs/memory-tools.md: the memory tools' exact definitions and messages, and the MCP
 * server's tools, produced by the code itself. `npm run docs:memory-tools` rewrites the page;
 * test/memory-tools-doc.test.ts fails when the page and the code disagree.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { createMcpServer, type McpDeps } from '../src/mcp/server.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { loadKindsFile } from '../src/memory/kinds-file.js';
import { createLogger } from '../src/observability/logger.js';
import type { MemoryToolBackend, StoredMemory } from '../src/tools/backend.js';
import { createToolSession } from '../src/tools/create-session.js';
import { buildToolDefinitions } from '../src/tools/definitions.js';
import { DOC_INTRO } from './memory-tools-intro.js';

export const DOC_PATH = new URL('../docs/memory-tools.md', import.meta.url).pathname;

/**
 * A store of a few memories in memory, for the example exchange only: what a backend answers is
 * the store's business (tested against Postgres in test/memory-tools.test.ts); this page shows
 * what the session makes of it.
 */
function exampleBackend(): MemoryToolBackend {
  const at = new Date('2026-05-01T19:00:00.000Z');
  const memories: StoredMemory[] = [
    {
      namespace: ['memories', 'u1'],
      key: '0b7e…',
      kind: 'memory',
      version: 1,
      value: { content: 'User loves ramen' },
      updatedAt: at,
    },
  ];
  return {
    search: async () => memories,
    apply: async ({ op }) => {
      if (op.op === 'delete') return { status: 'applied', memory: null };
      const base = op.op === 'insert' ? { namespace: ['memories', 'u1'], key: '5d1a…', version: 0 } : op.target;
      const memory = { ...base, kind: 'memory', version: base.version + 1, value: op.document, updatedAt: at };
      return { status: 'applied', memory };
    },
  };
}

async function exchange(): Promise<{ call: unknown; message: unknown }[]> {
  const session = createToolSession(exampleBackend(), { context: { userId: 'u1' } }, defaultKinds);
  const calls: [string, unknown][] = [
    ['search_memory', { query: 'food the user likes' }],
    ['manage_memory', { action: 'update', id: 'm1', document: { content: 'User loves ramen, especially miso ramen' } }],
    ['manage_memory', { action: 'create', document: { content: 'User no longer likes pasta' } }],
    ['manage_memory', { action: 'delete', id: 'm7' }],
    ['manage_memory', { action: 'create', document: { text: 'User is vegetarian' } }],
  ];
  const out = [];
  for (const [i, [name, args]] of calls.entries()) {
    const call = {
      id: `call_${i + 1}`,
      type: 'function' as const,
      function: { name, arguments: JSON.stringify(args) },
    };
    out.push({ call, message: await session.runToolCall(call) });
  }
  return out;
}

/** The MCP server's tools as an MCP client lists them (the default kinds; no call is made). */
async function mcpTools(): Promise<unknown> {
  const unused = () => {
    throw new Error('listing tools calls nothing');
  };
  const deps = {
    recall: { recall: unused },
    enqueue: unused,
    memories: {},
    embedder: {},
    kinds: defaultKinds,
    log: createLogger({ level: 'silent' }),
  } as unknown as McpDeps;
  const server = createMcpServer(deps, { context: { userId: 'u1' }, threadId: 'mcp-u1' });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'docs', version: '1' });
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  try {
    return (await client.listTools()).tools;
  } finally {
    await client.close();
    await server.close();
  }
}

const json = (v: unknown) => '```json\n' + JSON.stringify(v, null, 2) + '\n```';

export async function renderMemoryTools(): Promise<string> {
  const several = [...defaultKinds, ...loadKindsFile(new URL('../test/fixtures/kinds.yaml', import.meta.url).pathname)];
  return `${DOC_INTRO}
## The definitions

Built from the kinds by \`buildToolDefinitions\` (src/tools/definitions.ts): a collection kind's
zod schema becomes the JSON Schema of \`document\`, as in the reflection's tools
([model requests](model-requests.md)). With the default kind, \`engram.memoryTools({ context })\`'s
\`tools\`:

${json(buildToolDefinitions(defaultKinds))}

With several kinds (the default \`memory\`, and \`tech_interest\` and \`user_profile\` of
test/fixtures/kinds.yaml), \`kind\` names the kind of a new memory and \`document\` offers each
kind's schema; \`tech_interest\` has deletes off, which only its memories refuse; the profile is
not managed by the tools:

${json(buildToolDefinitions(several))}

## What one call sends back

Each \`runToolCall(call)\` returns the tool message to append to the conversation. Results are
JSON; mistakes are \`{"error": ...}\` naming what to fix, and nothing was written. In order, from
one session (the first search gave the id \`m1\`):

${(await exchange()).map(({ call, message }) => `${json(call)}\n\n${json(message)}`).join('\n\n')}

## The MCP server's tools

\`npm run start:mcp\` and \`/mcp\` list these tools (with the default kind; \`search_memory\`'s
\`kind\` and \`remember\`'s \`kind\` follow the deployment's kinds), as the MCP SDK's client
receives them:

${json(await mcpTools())}
`;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  writeFileSync(DOC_PATH, await renderMemoryTools());
  process.stdout.write(`wrote ${DOC_PATH}\n`);
}
