import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConflictError, EngramHttpClient, InputError, LimitError } from '../src/client/index.js';
import { EngramClient } from '../src/sdk/index.js';
import { startHarness, TEST_DATABASE_URL, TEST_DIMENSIONS, TEST_REDIS_URL, type Harness } from './helpers/harness.js';
import { FlakyHttpProxy } from './helpers/http-proxy.js';

/** What a call threw (it must throw). */
const failure = (work: Promise<unknown>) =>
  work.then(
    () => expect.fail('the call succeeded'),
    (err: unknown) => err as Error,
  );
const all = async (lines: AsyncIterable<string>) => {
  const out: string[] = [];
  for await (const line of lines) out.push(line);
  return out;
};
/** An export's lines after its header (whose `exportedAt` is the time of the export). */
const body = (lines: string[]) => lines.slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);

/** The data lifecycle (erase, export, import, revert) through engram/client, against the API. */
describe('engram/client: erase, export, import and revert', () => {
  let source: Harness;
  let target: Harness;
  let proxy: FlakyHttpProxy;
  /** Through a proxy that counts requests: what the client refuses, it must not have sent. */
  let client: EngramHttpClient;
  let fresh: EngramHttpClient;
  beforeAll(async () => {
    // API only: nothing takes the reflection jobs, so a thread's turns stay pending.
    source = await startHarness({ roles: ['api'] });
    target = await startHarness({ roles: ['api'] });
    proxy = new FlakyHttpProxy(source.url);
    client = new EngramHttpClient({ url: await proxy.start() });
    fresh = new EngramHttpClient({ url: target.url });
  });
  afterAll(async () => {
    await proxy?.stop();
    await source?.stop();
    await target?.stop();
  });

  it("erases a user's memories and pending turns, as POST /v1/erase does, and only theirs", async () => {
    for (const user of ['u1', 'u2']) {
      await client.enqueue({
        threadId: `erase-${user}`,
        context: { userId: user },
        messages: [{ role: 'user', content: `secret of ${user}` }],
      });
      await client.store.put(['memories', user], 'k', { content: `memory of ${user}` });
    }
    expect((await source.runtime.buffer.read('erase-u1', null, 10, 0)).pending).toHaveLength(1);

    const erased = await client.erase({ context: { userId: 'u1' } });
    expect(erased).toEqual({
      namespaces: 1,
      items: 1,
      historyRows: 1,
      threads: 1,
      jobs: 1,
      prefixes: [['memories', 'u1']],
    });
    expect(await client.store.get(['memories', 'u1'], 'k')).toBeNull();
    expect(await client.store.history(['memories', 'u1'], 'k')).toEqual([]);
    expect((await source.runtime.buffer.read('erase-u1', null, 10, 0)).pending).toEqual([]);
    // The other user is untouched; erasing them by the route answers as the client did.
    expect((await source.runtime.buffer.read('erase-u2', null, 10, 0)).pending).toHaveLength(1);
    const route = await fetch(`${source.url}/v1/erase`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { userId: 'u2' } }),
    });
    expect(await route.json()).toEqual({ ...erased, prefixes: [['memories', 'u2']] });

    // A prefix erases its namespaces and no thread.
    await client.store.put(['notes', 'team'], 'k', { content: 'x' });
    expect(await client.erase({ namespacePrefix: ['notes'] })).toMatchObject({ items: 1, threads: 0 });
  });

  it('exports by prefix or by context, and an import into a fresh schema gives the same file back', async () => {
    const ns = ['memories', 'u3'];
    const first = await client.store.put(ns, 'diet', { content: 'User is vegan' });
    await client.store.put(ns, 'diet', { content: 'User is vegetarian' }, { ifVersion: first.version });
    await client.store.put(ns, 'city', { content: 'User lives in Lyon' }, { ttl: 3_600_000 });

    const byPrefix = await all(client.store.export(ns, { history: true }));
    const byContext = await all(client.store.export({ context: { userId: 'u3' } }, { history: true }));
    expect(JSON.parse(byPrefix[0] as string)).toMatchObject({ type: 'export', scope: { namespacePrefix: ns } });
    expect(JSON.parse(byContext[0] as string)).toMatchObject({ type: 'export', scope: { context: { userId: 'u3' } } });
    expect(body(byContext)).toEqual(body(byPrefix));
    const lines = body(byPrefix);
    expect(lines.map((l) => [l.type, l.key, l.version])).toEqual([
      ['item', 'city', 1],
      ['history', 'city', 1],
      ['item', 'diet', 2],
      ['history', 'diet', 1],
      ['history', 'diet', 2],
    ]);
    // The same lines the route sends.
    const raw = await (await fetch(`${source.url}/v1/export?namespace=memories&namespace=u3&history=true`)).text();
    expect(body(raw.trim().split('\n'))).toEqual(lines);

    // Straight from one deployment's export into another's import, streamed.
    expect(await fresh.store.import(client.store.export(ns, { history: true }))).toEqual({
      items: 2,
      history: 3,
      expired: 0,
    });
    expect(body(await all(fresh.store.export(ns, { history: true })))).toEqual(lines);
    expect(await fresh.store.get(ns, 'diet')).toMatchObject({ value: { content: 'User is vegetarian' }, version: 2 });
    // Again: the keys exist there now, a conflict.
    expect(await failure(fresh.store.import(byPrefix))).toBeInstanceOf(ConflictError);
  });

  it('reads the import answer of a server from before `expired` as none left out', async () => {
    const ns = ['memories', 'older-server'];
    await source.runtime.storeApi.put({ namespace: ns, key: 'k', value: { content: 'x' } });
    const lines = await all(client.store.export(ns, { history: true }));
    await client.erase({ namespacePrefix: ns });
    // The source as an earlier server answers an import: without `expired`.
    proxy.rewrite = {
      path: '/v1/import',
      body: (text) => {
        const { expired: _left, ...answer } = JSON.parse(text) as Record<string, unknown>;
        return JSON.stringify(answer);
      },
    };
    onTestFinished(() => {
      proxy.rewrite = null;
    });
    expect(await client.store.import(lines)).toEqual({ items: 1, history: 1, expired: 0 });
  });

  it("exports by context through the SDK's store too", async () => {
    const sdk = new EngramClient({
      redisUrl: TEST_REDIS_URL,
      databaseUrl: TEST_DATABASE_URL,
      prefix: source.env.ENGRAM_PREFIX,
      schema: source.env.DATABASE_SCHEMA,
      embedding: { apiKey: 'test-key', baseURL: source.model.url, dimensions: TEST_DIMENSIONS },
    });
    onTestFinished(() => sdk.close());
    await client.store.put(['memories', 'u4'], 'k', { content: 'User likes tea' });
    const viaSdk = await all(sdk.store.export({ context: { userId: 'u4' } }));
    const viaHttp = await all(client.store.export({ context: { userId: 'u4' } }));
    expect(body(viaSdk)).toEqual(body(viaHttp));
    expect(body(viaSdk).map((l) => l.key)).toEqual(['k']);
    expect(body(await all(sdk.store.export(['memories', 'u4'])))).toEqual(body(viaHttp));
    expect(() => sdk.store.export({ namespacePrefix: ['memories'], context: { userId: 'u4' } })).toThrow(
      /exactly one of `namespacePrefix` .* or `context`/,
    );
    expect(() => sdk.store.export({} as never)).toThrow(InputError);
  });

  it('reverts an item to a version, and refuses a stale ifVersion or a job whose items changed since', async () => {
    const ns = ['notes', 'u5'];
    await client.store.put(ns, 'k', { content: 'first' });
    await client.store.put(ns, 'k', { content: 'second' });
    const back = await client.store.revert(ns, 'k', 1);
    expect(back).toMatchObject({ value: { content: 'first' }, version: 3 });
    expect(back.updatedAt).toBeInstanceOf(Date);
    expect((await client.store.history(ns, 'k')).map((e) => [e.op, e.version, e.actor])).toEqual([
      ['insert', 1, 'api'],
      ['update', 2, 'api'],
      ['update', 3, 'revert:api'],
    ]);
    const stale = await failure(client.store.revert(ns, 'k', 2, { ifVersion: 1 }));
    expect(stale).toBeInstanceOf(ConflictError);
    expect(await client.store.get(ns, 'k')).toMatchObject({ version: 3 });

    await client.store.put(ns, 'a', { content: 'from the job' }, { actor: 'job:1' });
    await client.store.put(ns, 'b', { content: 'from the job' }, { actor: 'job:1' });
    await client.store.put(ns, 'b', { content: 'edited since' });
    const refused = await failure(client.store.revertChanges('job:1'));
    expect(refused).toBeInstanceOf(ConflictError);
    expect(await client.store.get(ns, 'a')).not.toBeNull();
    expect(await client.store.revertChanges('job:1', { force: true })).toEqual({ restored: 0, deleted: 2 });
    expect(await client.store.get(ns, 'a')).toBeNull();
    expect(await client.store.get(ns, 'b')).toBeNull();
  });

  it('refuses bad input before sending anything, naming the field, and writes nothing', async () => {
    const ns = ['notes', 'u6'];
    await client.store.put(ns, 'k', { content: 'kept' });
    await client.enqueue({ threadId: 'kept', context: { userId: 'u6' }, messages: [{ role: 'user', content: 'x' }] });
    const file = await all(client.store.export(ns));
    const before = proxy.requests;
    const refusals: [Promise<unknown> | (() => unknown), RegExp][] = [
      [client.erase({} as never), /exactly one of `namespacePrefix` .* or `context`/],
      [client.erase({ context: { userId: 'u6' }, namespacePrefix: ns }), /exactly one of/],
      [client.erase({ namespacePrefix: [] }), /a namespace has at least one label[\s\S]*namespacePrefix/],
      [client.erase({ context: { 'user id': 'u6' } }), /invalid erase request: [\s\S]*context/],
      [client.erase({ context: { userId: 'u6' }, thread: 't' } as never), /Unrecognized key: "thread"/],
      [() => client.store.export({} as never), /invalid export scope: [\s\S]*exactly one of/],
      [() => client.store.export(['memories', '']), /namespace labels must not be empty[\s\S]*namespacePrefix/],
      [() => client.store.export(ns, { history: 'yes' } as never), /invalid export options: [\s\S]*history/],
      [client.store.revert(ns, 'k', 0), /invalid revert request: [\s\S]*version/],
      [client.store.revert(ns, 'k', 1, { ifVersion: -1 }), /ifVersion/],
      [client.store.revert([], 'k', 1), /namespace/],
      [client.store.revertChanges(''), /invalid revertChanges request: [\s\S]*changedBy/],
      [client.store.revertChanges('job:1', { force: 'yes' } as never), /force/],
      [client.store.import('not json'), /line 1 is not JSON/],
      [client.store.import(''), /the file is empty/],
      [
        client.store.import([JSON.stringify({ type: 'item', namespace: ns, key: 'k2' })]),
        /line 1: [\s\S]*kind|line 1 must be the export header/,
      ],
      [
        client.store.import([
          JSON.stringify({ type: 'export', format: 1, exportedAt: new Date().toISOString(), scope: {} }),
          JSON.stringify({ type: 'item', namespace: ns, key: 'k2', value: { content: 'x' } }),
        ]),
        /invalid import: line 2: [\s\S]*version/,
      ],
      // The file's own rules, as the API keeps them: a key once, under the header's prefix.
      [client.store.import([...file, file[1] as string]), /invalid import: line 3: .* appears already at line 2/],
      [
        client.store.import(file.map((l, i) => (i === 1 ? l.replace('"u6"', '"u7"') : l))),
        /invalid import: line 2: namespace \["notes","u7"\] is outside the file's scope.namespacePrefix/,
      ],
      [client.store.import([42] as never), /line 1 is not a string/],
      [client.store.import(`${'x'.repeat(65 * 1024 * 1024)}`), /at most 64 MiB/],
    ];
    for (const [call, message] of refusals) {
      const err =
        typeof call === 'function'
          ? (() => {
              try {
                call();
              } catch (e) {
                return e as Error;
              }
              return expect.fail('the call did not throw');
            })()
          : await failure(call);
      expect(err, String(message)).toBeInstanceOf(InputError);
      expect(err.message).toMatch(message);
    }
    expect(await failure(client.store.import('x'.repeat(65 * 1024 * 1024)))).toBeInstanceOf(LimitError);
    expect(proxy.requests - before).toBe(0);
    // Nothing was written or erased.
    expect(await client.store.get(ns, 'k')).toMatchObject({ version: 1, value: { content: 'kept' } });
    expect((await source.runtime.buffer.read('kept', null, 10, 0)).pending).toHaveLength(1);
  });
});
