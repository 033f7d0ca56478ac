import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';

/** One series' value in a Prometheus text scrape, or undefined when it is not there. */
function value(scrape: string, series: string): number | undefined {
  const line = scrape.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** What an operator scrapes: conventional Node names, and engram's durations and thread gauges. */
describe('/metrics', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api', 'reflection'], env: { DEBOUNCE_MS: '100' } });
  });
  afterAll(() => h?.stop());
  const scrape = async () => (await fetch(`${h.url}/metrics`)).text();
  const post = (thread: string, content: string) =>
    fetch(`${h.url}/v1/threads/${thread}/turns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { userId: 'u1' }, messages: [{ role: 'user', content }] }),
    });

  it("Node's default metrics under their own names, not engram's prefix", async () => {
    const text = await scrape();
    expect(value(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).not.toMatch(/^engram_process_/m);
  });

  it('request, model and search durations, by route pattern and outcome', async () => {
    expect((await post('m1', 'I love ramen')).status).toBe(202);
    await waitFor(async () => (await h.runtime.store.cursor('m1')) !== null);
    const search = await fetch(`${h.url}/v1/memories/search?namespace=memories&namespace=u1&query=food`);
    expect(search.status).toBe(200);
    expect((await fetch(`${h.url}/v1/nowhere/42`)).status).toBe(404);
    const text = await scrape();
    const count = (name: string, labels: string) => value(text, `${name}_count{${labels}}`);
    expect(
      count('engram_http_request_duration_seconds', 'method="POST",route="/v1/threads/:threadId/turns",status="202"'),
    ).toBe(1);
    expect(count('engram_http_request_duration_seconds', 'method="GET",route="/v1/memories/search",status="200"')).toBe(
      1,
    );
    expect(count('engram_http_request_duration_seconds', 'method="GET",route="unmatched",status="404"')).toBe(1);
    expect(text).not.toContain('/v1/nowhere/42');
    expect(count('engram_model_request_duration_seconds', 'model="chat",outcome="ok"')).toBeGreaterThanOrEqual(1);
    expect(count('engram_model_request_duration_seconds', 'model="embedding",outcome="ok"')).toBeGreaterThanOrEqual(2);
    expect(count('engram_search_duration_seconds', 'op="search",outcome="ok"')).toBe(1);
  });

  it('pending threads and the age of the oldest pending turn, read from Redis at scrape time', async () => {
    // A thread that cannot reflect yet: its quiet window is far away.
    await h.runtime.producer.enqueue({
      threadId: 'm-wait',
      context: { userId: 'u2' },
      messages: [{ role: 'user', content: 'later' }],
      debounceMs: 60_000,
    });
    await waitFor(async () => value(await scrape(), 'engram_pending_threads') === 1);
    const text = await scrape();
    expect(value(text, 'engram_oldest_pending_turn_age_seconds')).toBeGreaterThan(0);
    expect(value(text, 'engram_parked_threads')).toBe(0);
  });
});
