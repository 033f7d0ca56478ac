import { randomUUID } from 'node:crypto';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalidInput } from '../core/invalid-input.js';
import { InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { MemoryKind } from '../memory/kinds.js';
import type { Recall } from '../memory/recall.js';
import type { Logger } from '../observability/logger.js';
import type { Producer } from '../queue/enqueue.js';
import { createMcpServer, type McpDeps } from '../mcp/server.js';
import { defaultThreadId, sessionInputSchema } from '../mcp/session-config.js';
import type { StoreService } from '../store/store-service.js';
import { headerText } from './header-text.js';
import { jsonText } from './json-text.js';
import { McpSessions } from './mcp-sessions.js';
import type { Tenancy } from './tenancy.js';

/** What /mcp needs beyond the API's own parts: the kinds (document schemas) and the embedder. */
export interface McpRouteDeps {
  mcp?: { kinds: readonly MemoryKind[]; embedder: Embedder } | undefined;
  recall: Recall;
  producer: Producer;
  store: StoreService;
  tenancy: Tenancy;
  log: Logger;
}

/**
 * Sessions one API process keeps (about 100 KB each, measured in mcp-sessions.ts): 1,000 in all
 * (about 100 MB), 100 per tenant with API keys, so that one tenant opening sessions closes only
 * its own; without keys every session is one tenant's, and the total is its cap. One idle for
 * 30 minutes is closed when the next opens.
 */
export const MAX_SESSIONS = 1_000;
export const MAX_TENANT_SESSIONS = 100;
const IDLE_MS = 30 * 60_000;

const CONTEXT_HEADER = 'x-engram-context';
const THREAD_HEADER = 'x-engram-thread';
const jsonHeader = jsonText(CONTEXT_HEADER);

/**
 * MCP over streamable HTTP at `/mcp`, stateful: `initialize` opens a session (its id in the
 * `Mcp-Session-Id` header), whose context comes from the `x-engram-context` header (JSON) and is
 * stamped with the API key's tenant as on /v1; its thread from `x-engram-thread` (default: one per
 * context). A session answers only its own tenant's key. Answers are JSON, not SSE streams (the
 * tools answer once; no stream holds a connection), and GET, the server-to-client stream, is 405.
 */
export function registerMcpRoute(app: FastifyInstance, deps: McpRouteDeps): void {
  if (!deps.mcp) return;
  const mcp: McpDeps = {
    ...deps.mcp,
    recall: deps.recall,
    enqueue: (input) => deps.producer.enqueueParsed(input),
    memories: deps.store.memories,
    log: deps.log.child({ component: 'mcp' }),
  };
  const closeTransport = (transport: StreamableHTTPServerTransport) =>
    void transport.close().catch((err: unknown) => mcp.log.warn({ err }, 'closing an MCP session'));
  const sessions = new McpSessions<StreamableHTTPServerTransport>(
    {
      perTenant: deps.tenancy.keyed ? MAX_TENANT_SESSIONS : MAX_SESSIONS,
      total: MAX_SESSIONS,
      idleMs: IDLE_MS,
    },
    closeTransport,
  );

  /** Hands the request to the session's transport, which writes the response itself. */
  const hand = async (transport: StreamableHTTPServerTransport, request: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    try {
      await transport.handleRequest(request.raw, reply.raw, request.body);
    } catch (err) {
      mcp.log.error({ err }, 'MCP request failed');
      if (!reply.raw.headersSent) reply.raw.writeHead(500, { 'content-type': 'application/json' });
      reply.raw.end(JSON.stringify({ error: 'internal error' }));
    }
  };

  /** The session a request names: only for the tenant that opened it (404 for anyone else). */
  const existing = (request: FastifyRequest, reply: FastifyReply) => {
    const id = request.headers['mcp-session-id'];
    const transport = typeof id === 'string' ? sessions.use(id, request.tenant) : null;
    if (!transport)
      void reply.status(404).send({ error: 'no such MCP session (it ended or expired): initialize a new one' });
    return transport;
  };

  // Not in the OpenAPI document: MCP is its own protocol, described by its own specification.
  app.post('/mcp', { schema: { hide: true } }, async (request, reply) => {
    if (request.headers['mcp-session-id'] !== undefined) {
      const transport = existing(request, reply);
      if (transport) await hand(transport, request, reply);
      return reply;
    }
    if (!isInitializeRequest(request.body))
      throw new InputError('a request without an Mcp-Session-Id header must be an MCP initialize request');
    const config = sessionOf(request, deps.tenancy);
    let server;
    try {
      server = createMcpServer(mcp, config);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      throw new InputError(`${err.message}: send them in the ${CONTEXT_HEADER} header, as JSON`, undefined, {
        cause: err,
      });
    }
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      enableJsonResponse: true,
      onsessioninitialized: (id) => sessions.add(id, request.tenant, transport),
      onsessionclosed: (id) => void sessions.delete(id),
    });
    await server.connect(transport);
    await hand(transport, request, reply);
    return reply;
  });

  app.delete('/mcp', { schema: { hide: true } }, async (request, reply) => {
    const transport = existing(request, reply);
    if (transport) await hand(transport, request, reply);
    return reply;
  });

  app.get('/mcp', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .status(405)
      .header('allow', 'POST, DELETE')
      .send({ error: 'this MCP server sends no server-to-client stream: POST requests only' }),
  );

  // An open session holds no connection, but its transport holds the server: close them with the app.
  app.addHook('preClose', async () => {
    for (const id of sessions.ids()) {
      const transport = sessions.delete(id);
      if (transport) closeTransport(transport);
    }
  });
}

/** The session's context and thread, from its headers, confined to the key's tenant. */
function sessionOf(request: FastifyRequest, tenancy: Tenancy) {
  const header = (name: string) => headerText(request, name);
  const raw = header(CONTEXT_HEADER);
  let context: unknown = {};
  if (raw !== undefined) {
    const json = jsonHeader.safeParse(raw);
    if (!json.success) throw invalidInput(`${CONTEXT_HEADER} header`, json.error);
    context = json.data;
  }
  const parsed = sessionInputSchema.safeParse({ context, thread: header(THREAD_HEADER) });
  if (!parsed.success) throw invalidInput(`MCP session headers (${CONTEXT_HEADER}, ${THREAD_HEADER})`, parsed.error);
  const stamped = tenancy.stampContext(request, parsed.data.context);
  const thread = parsed.data.thread ?? defaultThreadId(stamped);
  return { context: stamped, threadId: tenancy.threadKey(request, thread, stamped) };
}
