import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tracing } from '@opentelemetry/sdk-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { startTracing, type Tracing } from '../src/observability/tracing.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { parseEnv } from '../src/config/env.js';
import { cleanup, startHarness, testEnvVars, waitFor, type Harness } from './helpers/harness.js';

type Span = tracing.ReadableSpan;
/** Remembers every user turn as it is. */
const recordAll: ChatHandler = (request) => ({
  toolCalls: readPrompt(request)
    .turns.filter((t) => t.role === 'user')
    .map((t) => ({ name: 'insert_memory', arguments: { content: t.content } })),
});

/**
 * One trace follows a turn from its enqueue through the delayed job's runs to the model calls and
 * the commit that changed memories; a turn that joins the thread's job is linked to that trace.
 * Spans are read from an in-memory exporter; nothing else is mocked.
 */
describe('tracing', () => {
  const exporter = new tracing.InMemorySpanExporter();
  let sdk: Tracing | null;
  let h: Harness;
  beforeAll(async () => {
    sdk = await startTracing(
      { serviceName: 'engram-test', spanProcessors: [new tracing.SimpleSpanProcessor(exporter)] },
      createLogger({ level: 'silent' }),
    );
    h = await startHarness({
      roles: ['api', 'reflection'],
      chat: recordAll,
      env: { DEBOUNCE_MS: '300' },
      runtime: { tracing: true },
    });
  });
  afterAll(async () => {
    await h?.stop();
    await sdk?.shutdown();
  });
  const post = (content: string) =>
    fetch(`${h.url}/v1/threads/tr1/turns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { userId: 'u1' }, messages: [{ role: 'user', content }] }),
    });
  const spans = () => exporter.getFinishedSpans();
  /** The span's ancestors' names, nearest first (within the spans exported). */
  const ancestors = (span: Span): string[] => {
    const names: string[] = [];
    let parent = span.parentSpanContext?.spanId;
    while (parent) {
      const found = spans().find((s) => s.spanContext().spanId === parent);
      if (!found) break;
      names.push(found.name);
      parent = found.parentSpanContext?.spanId;
    }
    return names;
  };

  it('follows a turn from its enqueue to the memories its reflection wrote', async () => {
    expect((await post('I love ramen')).status).toBe(202);
    expect((await post('I also like pasta')).status).toBe(202); // joins the thread's delayed job
    await waitFor(async () => (await h.runtime.store.cursor('tr1')) !== null);
    const commit = await waitFor(() => spans().find((s) => s.name === 'engram.commit'));
    const enqueues = await waitFor(() => {
      const found = spans().filter((s) => s.name === 'engram.enqueue');
      return found.length === 2 ? found : null;
    });
    const [first, second] = enqueues as [Span, Span];
    const traceId = first.spanContext().traceId;

    // The commit is in the first turn's trace, under a run of the job that turn's enqueue added.
    expect(commit.spanContext().traceId).toBe(traceId);
    // Its parents end after it (the run completes the job): wait for the chain to be exported.
    const chain = await waitFor(() => {
      const names = ancestors(commit);
      return names.at(-1) === 'engram.enqueue' ? names : null;
    });
    expect(chain).toEqual(expect.arrayContaining(['process reflection', 'add reflection.reflect']));
    expect(commit.attributes).toMatchObject({ 'engram.change.status': 'applied', 'engram.thread.id': 'tr1' });
    expect(commit.attributes['engram.memory.keys']).toHaveLength(2);
    expect(commit.attributes['engram.memory.inserted']).toBe(2);

    // The model calls of that run are in the same trace.
    const inTrace = spans().filter((s) => s.spanContext().traceId === traceId);
    expect(inTrace.map((s) => s.name)).toEqual(expect.arrayContaining(['engram.model.chat', 'engram.model.embed']));

    // The second turn added no job: its own trace links to the job's.
    expect(second.spanContext().traceId).not.toBe(traceId);
    expect(second.links.map((l) => l.context.traceId)).toEqual([traceId]);
  });

  it('a process with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over OTLP/HTTP, flushed at SIGTERM', async () => {
    const received: { url: string; body: string }[] = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ url: req.url ?? '', body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const { port } = collector.address() as AddressInfo;
    const vars = testEnvVars('http://127.0.0.1:9/v1', {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      PORT: '3471',
    });
    const migrator = await startHarness({ roles: [], env: { DATABASE_SCHEMA: vars.DATABASE_SCHEMA! } });
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/api.ts'], {
      env: { PATH: process.env.PATH ?? '', ...vars },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.on('exit', r));
    try {
      await waitFor(
        () =>
          fetch('http://127.0.0.1:3471/healthz').then(
            (r) => r.ok,
            () => false,
          ),
        { timeoutMs: 20_000 },
      );
      const res = await fetch('http://127.0.0.1:3471/v1/threads/otlp/turns', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ context: { userId: 'u1' }, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(202);
      child.kill('SIGTERM');
      await exited;
      const traces = received.filter((r) => r.url === '/v1/traces').map((r) => r.body);
      expect(traces.join('')).toContain('engram.enqueue');
      expect(traces.join('')).toContain('engram-api'); // the service name
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      collector.close();
      await migrator.stop();
      await cleanup(parseEnv(vars));
    }
  });

  it('off unless asked: no telemetry on the queues of a runtime without tracing', async () => {
    const plain = await startHarness({ roles: [] });
    try {
      expect(plain.runtime.telemetry).toBeUndefined();
      for (const queue of plain.runtime.queues.reflection) expect(queue.opts.telemetry).toBeUndefined();
      expect(plain.runtime.producer.constructor.name).toBe('Producer');
    } finally {
      await plain.stop();
    }
  });
});
