import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { inSpan, startTracing } from '../src/observability/tracing.js';
import { waitFor } from './helpers/harness.js';

/**
 * Spans the collector refused were dropped without a word: OpenTelemetry reports an export's
 * failure to its diagnostic logger, which nothing had set, while engram's log said `tracing on`.
 */
describe("tracing's export failures", () => {
  // The batch processor's export every 100 ms instead of 5 s (read by the SDK at start).
  process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
  let requests = 0;
  // A collector asked at a wrong path (an endpoint given with its /v1/traces, appended again).
  const collector = createServer((_req, res) => {
    requests++;
    res.writeHead(404).end('not found');
  });
  afterAll(async () => {
    delete process.env.OTEL_BSP_SCHEDULE_DELAY;
    await new Promise((r) => collector.close(r));
  });

  it('are logged once per kind a minute, saying what the collector answered', async () => {
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
    const lines: Record<string, unknown>[] = [];
    const log = pino(
      { level: 'info' },
      { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
    );
    const tracing = await startTracing({ endpoint, serviceName: 'engram-test' }, log);
    try {
      const warned = () => lines.filter((l) => l.component === 'tracing');
      for (let batch = 0; batch < 3; batch++) {
        await inSpan('engram.test', {}, async () => undefined);
        const sent = requests;
        await waitFor(() => requests > sent, { timeoutMs: 10_000 });
      }
      await waitFor(() => warned().length > 0, { timeoutMs: 10_000 });
      expect(warned()).toEqual([
        expect.objectContaining({
          level: 40,
          problem: 'Not Found (404)',
          msg: expect.stringContaining('spans may not reach the collector (OTEL_EXPORTER_OTLP_ENDPOINT)'),
        }),
      ]);
    } finally {
      await tracing?.shutdown().catch(() => undefined);
    }
  }, 40_000);
});
