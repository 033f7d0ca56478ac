import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultKinds, defineKind, type MemoryKind, type MemoryKindInput } from '../src/memory/kinds.js';
import { reflectThread } from '../src/memory/reflect.js';
import { UnavailableError } from '../src/errors.js';
import { EXPORT_CHUNK_BYTES, exportItems } from '../src/store/export.js';
import { importLines } from '../src/store/import-lines.js';
import type { Db } from '../src/store/db.js';
import { tables } from '../src/store/sql.js';
import { foodieModel } from './fake-model/foodie.js';
import { runtimeBackends, sdkClient, startHarness, type Harness } from './helpers/harness.js';

/** Export a user's memories with their history, and import them into an empty deployment. */
// From each database into the other: the file is the same whatever wrote it.
const [postgres, pglite] = runtimeBackends as [(typeof runtimeBackends)[0], (typeof runtimeBackends)[0]];
const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`);
const directions = [
  { name: 'Postgres to PGlite', from: postgres, to: pglite },
  { name: 'PGlite to Postgres', from: pglite, to: postgres },
];

describe.each(directions)('export and import, $name', ({ from, to }) => {
  let source: Harness;
  let target: Harness;
  const temporal = defineKind({ ...(defaultKinds[0] as MemoryKind), temporal: true } as MemoryKindInput);
  beforeAll(async () => {
    source = await startHarness({ roles: ['api'], chat: foodieModel, env: from.env, runtime: { kinds: [temporal] } });
    target = await startHarness({ roles: ['api'], env: to.env, runtime: { kinds: [temporal] } });
    expect([source.runtime.db.backend, target.runtime.db.backend]).toEqual([from.name, to.name]);
    for (const [thread, content] of [
      ['c1', 'I love ramen! I also like pasta.'],
      ['c2', 'These days I like miso ramen, and I no longer like pasta.'],
    ] as const) {
      await source.runtime.producer.enqueue({
        threadId: thread,
        context: { userId: 'u1' },
        messages: [{ role: 'user', content }],
      });
      await reflectThread(source.runtime.reflectDeps(), thread, { actor: `reflection:${thread}` });
    }
    const put = (key: string, content: string) =>
      fetch(`${source.url}/v1/store/items`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace: ['memories', 'u1'], key, value: { content }, ttl: 3_600_000 }),
      });
    await put('note', 'Order A-77123 ships Friday');
    await put('note', 'Order A-77123 shipped');
    await put('other', 'x');
    await fetch(`${source.url}/v1/store/items`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: ['memories', 'u1'], key: 'other' }),
    });
  });
  afterAll(async () => {
    await source?.stop();
    await target?.stop();
  });

  const exportOf = async (h: Harness, query: string) => {
    const res = await fetch(`${h.url}/v1/export?${query}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    return (await res.text()).trim().split('\n');
  };
  const withoutHeader = (lines: string[]) => lines.slice(1).map((l) => JSON.parse(l) as Record<string, unknown>);

  it('round-trips items with their versions, times, validity and history into an empty deployment', async () => {
    const byContext = await exportOf(source, `context=${encodeURIComponent('{"userId":"u1"}')}&history=true`);
    expect(JSON.parse(byContext[0]!)).toMatchObject({
      type: 'export',
      format: 1,
      scope: { context: { userId: 'u1' } },
    });
    const exported = withoutHeader(byContext);
    // Live items (invalidated ones too), each followed by its history; a deleted item is not exported.
    expect(
      exported
        .filter((l) => l.type === 'item')
        .map((l) => (l.value as { content: string }).content)
        .sort(),
    ).toEqual([
      'Order A-77123 shipped',
      'User likes pasta',
      'User loves ramen',
      'User loves ramen, especially miso ramen',
    ]);
    expect(exported.find((l) => l.key === 'note' && l.type === 'item')).toMatchObject({ version: 2, ttlMs: 3_600_000 });

    const imported = await fetch(`${target.url}/v1/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: byContext.join('\n'),
    });
    expect(imported.status).toBe(200);
    expect(await imported.json()).toEqual({
      items: 4,
      history: exported.filter((l) => l.type === 'history').length,
      expired: 0,
    });

    const again = await exportOf(target, 'namespace=memories&namespace=u1&history=true');
    expect(withoutHeader(again)).toEqual(exported);
    // Re-embedded by the target: searchable by meaning and by words, what holds now only.
    const found = await fetch(
      `${target.url}/v1/memories/search?namespace=memories&namespace=u1&query=A-77123&mode=hybrid`,
    );
    expect(((await found.json()) as { memories: { key: string }[] }).memories.map((m) => m.key)).toContain('note');

    // History keeps the validity each change left, so a revert on the target puts an
    // invalidation back as the source dated it.
    const pasta = exported.find(
      (l) => l.type === 'item' && (l.value as { content: string }).content === 'User likes pasta',
    );
    expect(pasta?.invalidAt).toEqual(expect.any(String));
    expect(exported.find((l) => l.type === 'history' && l.key === pasta!.key && l.op === 'invalidate')).toMatchObject({
      invalidAt: pasta!.invalidAt,
      validFrom: pasta!.validFrom,
    });
    const back = await target.runtime.storeApi.revert({ namespace: ['memories', 'u1'], key: pasta!.key, version: 2 });
    expect([back.version, back.invalidAt?.toISOString(), back.validFrom.toISOString()]).toEqual([
      3,
      pasta!.invalidAt,
      pasta!.validFrom,
    ]);
  });

  it('refuses a key that exists, and a bad line anywhere writes nothing', async () => {
    const lines = await exportOf(source, 'namespace=memories&namespace=u1');
    const twice = await fetch(`${target.url}/v1/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: lines.join('\n'),
    });
    expect(twice.status).toBe(409);

    const bad = [...lines.slice(0, 2).map((l) => l.replace('"memories"', '"fresh"')), '{"type":"item","key":5}'];
    const res = await fetch(`${target.url}/v1/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: bad.join('\n'),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/^invalid|line 3/);
    const fresh = await fetch(`${target.url}/v1/store/items/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespacePrefix: ['fresh'] }),
    });
    expect(((await fresh.json()) as { items: unknown[] }).items).toEqual([]);
  });

  const send = (body: string, type = 'application/x-ndjson') =>
    fetch(`${target.url}/v1/import`, { method: 'POST', headers: { 'content-type': type }, body }).then(async (r) => ({
      status: r.status,
      answer: (await r.json()) as Record<string, unknown>,
    }));
  const post = (body: string, type?: string) =>
    send(body, type).then(({ status, answer }) => ({ status, error: answer.error as string }));
  const hostileItems = async () => {
    const res = await fetch(`${target.url}/v1/store/items/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespacePrefix: ['hostile'] }),
    });
    return ((await res.json()) as { items: unknown[] }).items;
  };

  it('refuses a bad kind name and a file without its header line', async () => {
    const lines = (await exportOf(source, 'namespace=memories&namespace=u1')).map((l) =>
      l.replace(/"memories"/g, '"hostile"'),
    );
    const item = lines.findIndex((l) => l.includes('"type":"item"'));
    // A kind no put could name: it was stored as it was.
    for (const kind of ['Bad-Kind', 'k\u0000', ' '.repeat(10)]) {
      const bad = lines.map((l, i) => (i === item ? l.replace(/"kind":"[^"]*"/, `"kind":${JSON.stringify(kind)}`) : l));
      const res = await post(bad.join('\n'));
      expect(res.status, kind).toBe(400);
      expect(res.error).toMatch(new RegExp(`line ${item + 1}: .*lower-case identifier`, 's'));
    }
    // The header missing, or behind blank lines (which skipped the check), or the file empty.
    for (const body of [lines.slice(1).join('\n'), `\n\n${lines.slice(1).join('\n')}`, '', '\n\n']) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(res.error).toMatch(/export header/);
    }
    expect(await hostileItems()).toEqual([]);
  });

  /** The rows under namespaces that start with `label` in the target, live or not: what an import wrote. */
  const rowsUnder = async (label: string) => {
    const t = tables(target.runtime.store.schema);
    const count = async (table: string) =>
      Number(
        (
          await target.runtime.db.query<{ n: string }>(`select count(*) as n from ${table} where namespace[1] = $1`, [
            label,
          ])
        ).rows[0]?.n,
      );
    return { items: await count(t.memories), history: await count(t.history) };
  };
  /** An export file (its header, no history) of one exported item under [label, 'u1'], once per key. */
  const copiesOf = async (label: string, names: string[]) => {
    const [header, ...rest] = (await exportOf(source, 'namespace=memories&namespace=u1')).map((l) =>
      l.replace(/"memories"/g, JSON.stringify(label)),
    );
    const item = JSON.parse(rest.find((l) => l.includes('"type":"item"')) as string) as Record<string, unknown>;
    return [header as string, ...names.map((key) => JSON.stringify({ ...item, key }))];
  };

  it('refuses a key the file holds twice, naming both lines, and writes nothing', async () => {
    // Twice in one batch of 500 items: the restore's insert broke the primary key (a 500).
    const near = await copiesOf('twice', ['k0', 'k1', 'k0']);
    expect(await post(near.join('\n'))).toEqual({
      status: 400,
      error: 'line 4: namespace ["twice","u1"] key "k0" appears already at line 2 (a file holds each key once)',
    });
    // In two batches: the first 500 items were committed, then a 409 said the key was here.
    const far = await copiesOf(
      'twice',
      Array.from({ length: 600 }, (_, i) => (i === 500 ? 'k0' : `k${i}`)),
    );
    expect(await post(far.join('\n'))).toEqual({
      status: 400,
      error: 'line 502: namespace ["twice","u1"] key "k0" appears already at line 2 (a file holds each key once)',
    });
    expect(await rowsUnder('twice')).toEqual({ items: 0, history: 0 });
    // The file corrected imports: nothing of the refused ones stands in its way.
    const corrected = far.filter((_, i) => i !== 501);
    expect((await post(corrected.join('\n'))).status).toBe(200);
    expect(await rowsUnder('twice')).toEqual({ items: 599, history: 0 });
  });

  it("refuses an item outside its header's namespacePrefix, naming its line, and writes nothing", async () => {
    const lines = await copiesOf('scoped', ['a', 'b']);
    const outside = lines.map((l, i) => (i === 2 ? l.replace('"scoped"', '"elsewhere"') : l));
    expect(await post(outside.join('\n'))).toEqual({
      status: 400,
      error: `line 3: namespace ["elsewhere","u1"] is outside the file's scope.namespacePrefix ["scoped","u1"]`,
    });
    // A prefix that is no list of labels: nothing to check the items against.
    const unsaid = lines.map((l, i) =>
      i === 0 ? l.replace(/"namespacePrefix":\[[^\]]*\]/, '"namespacePrefix":"scoped"') : l,
    );
    expect(await post(unsaid.join('\n'))).toEqual({
      status: 400,
      error: expect.stringMatching(/^line 1: .*scope\.namespacePrefix/s),
    });
    expect([await rowsUnder('scoped'), await rowsUnder('elsewhere')]).toEqual([
      { items: 0, history: 0 },
      { items: 0, history: 0 },
    ]);
  });

  it('imports what the store wrote when a fact was invalidated by a conversation dated before it', async () => {
    // Conversations reflected out of their order (a backfill): the later one first. Pasta is
    // then invalidated in January, though it holds from March: engram writes such a row.
    for (const [thread, content, createdAt] of [
      ['u2-march', 'I love ramen! I also like pasta.', '2026-03-02T09:30:00.000Z'],
      ['u2-january', 'These days I like miso ramen, and I no longer like pasta.', '2026-01-10T18:00:00.000Z'],
    ] as const) {
      await source.runtime.producer.enqueue({
        threadId: thread,
        context: { userId: 'u2' },
        messages: [{ role: 'user', content, createdAt }],
      });
      await reflectThread(source.runtime.reflectDeps(), thread, { actor: `reflection:${thread}` });
    }
    const lines = await exportOf(source, 'namespace=memories&namespace=u2&history=true');
    const items = withoutHeader(lines).filter((l) => l.type === 'item');
    expect(items.filter((l) => l.invalidAt && (l.invalidAt as string) < (l.validFrom as string))).not.toEqual([]);
    expect((await post(lines.join('\n'))).status).toBe(200);
    expect(withoutHeader(await exportOf(target, 'namespace=memories&namespace=u2&history=true'))).toEqual(
      withoutHeader(lines),
    );
  });

  it('leaves out an item whose expiry passed since its export, with its history, and counts it apart', async () => {
    const lines = (await exportOf(source, 'namespace=memories&namespace=u1&history=true')).map((l) =>
      l.replace(/"memories"/g, '"expired"'),
    );
    const note = (l: string) => (JSON.parse(l) as { key: string }).key === 'note';
    const past = lines.map((l, i) =>
      i > 0 && note(l) ? l.replace(/"expiresAt":"[^"]*"/, '"expiresAt":"2000-01-01T00:00:00.000Z"') : l,
    );
    const kept = withoutHeader(lines).filter((l) => l.key !== 'note');
    expect(await send(past.join('\n'))).toEqual({
      status: 200,
      answer: {
        items: kept.filter((l) => l.type === 'item').length,
        history: kept.filter((l) => l.type === 'history').length,
        expired: 1,
      },
    });
    expect(await rowsUnder('expired')).toEqual({
      items: kept.filter((l) => l.type === 'item').length,
      history: kept.filter((l) => l.type === 'history').length,
    });
    // The namespace counts what it holds, not what was left out.
    const counted = await target.runtime.db.query<{ items: string }>(
      `select items from ${tables(target.runtime.store.schema).namespaces} where namespace = $1`,
      [['expired', 'u1']],
    );
    expect(Number(counted.rows[0]?.items)).toBe(kept.filter((l) => l.type === 'item').length);
    // The item's key is empty here: a file that holds it live imports it.
    const again = await post([lines[0] as string, ...lines.slice(1).filter(note)].join('\n'));
    expect(again.status).toBe(200);
  });

  it('says how many items went in when a batch fails after others were committed', async () => {
    const { store, embedder } = target.runtime;
    const failing = <T extends object>(of: T, method: keyof T, error: Error): T => {
      let calls = 0;
      const twin = Object.create(of) as T;
      const own = (of[method] as (...args: unknown[]) => Promise<unknown>).bind(of);
      (twin as Record<keyof T, unknown>)[method] = (...args: unknown[]) =>
        ++calls === 2 ? Promise.reject(error) : own(...args);
      return twin;
    };
    // The embedding model gone at the second batch, or Postgres at the second restore.
    const lost = new UnavailableError('embedding-model', 'the embedding model is not reachable');
    await expect(
      importLines(store, failing(embedder, 'embed', lost), await copiesOf('partial1', keys(501)), undefined),
    ).rejects.toMatchObject({
      name: 'UnavailableError',
      dependency: 'embedding-model',
      message: expect.stringMatching(
        /^the embedding model is not reachable; 500 items and 0 history rows were imported before it/,
      ),
    });
    const down = new Error('Connection terminated unexpectedly');
    await expect(
      importLines(failing(store, 'restore', down), embedder, await copiesOf('partial2', keys(501)), undefined),
    ).rejects.toMatchObject({
      name: 'UnavailableError',
      dependency: 'postgres',
      message: expect.stringMatching(/500 items and 0 history rows were imported before it/),
    });
    expect([await rowsUnder('partial1'), await rowsUnder('partial2')]).toEqual([
      { items: 500, history: 0 },
      { items: 500, history: 0 },
    ]);
  });

  it('refuses an export context that is not a JSON object or holds __proto__, naming it', async () => {
    const refused = async (context: string) => {
      const res = await fetch(`${source.url}/v1/export?context=${encodeURIComponent(context)}`);
      return [res.status, ((await res.json()) as { error: string }).error];
    };
    expect(await refused('userId=u1')).toEqual([400, expect.stringMatching(/context must be a JSON object/)]);
    // The record schema would drop the key and export every user's memories under `{}`'s rules.
    expect(await refused('{"__proto__":{"userId":"u1"}}')).toEqual([
      400,
      expect.stringMatching(/context has a key "__proto__", which is refused/),
    ]);
    expect(await refused(`${'['.repeat(100)}${']'.repeat(100)}`)).toEqual([
      400,
      expect.stringMatching(/context nests deeper than 64/),
    ]);
  });

  it('answers a JSON body 415, a body over 64 MiB 413 and one not UTF-8 400, each naming what the import takes', async () => {
    // A JSON body is not an export file: 415 naming the type to send, not a 400 after parsing it.
    expect(await post('{"type":"export"}', 'application/json')).toEqual({
      status: 415,
      error: 'the body must be content-type: application/x-ndjson, not application/json',
    });
    // Over its own limit (64 MiB), not the API's 4 MiB: the 413 named the API's.
    const over = await post('x'.repeat(64 * 1024 * 1024 + 1));
    expect(over).toEqual({ status: 413, error: 'the body is too large: a request may send at most 64 MiB' });
    // Bytes that are not UTF-8 are refused, not replaced; so is another charset.
    const res = await fetch(`${target.url}/v1/import`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: Buffer.concat([Buffer.from('{"type":"export"'), Buffer.from([0xff]), Buffer.from('}\n')]),
    });
    expect({ status: res.status, ...((await res.json()) as object) }).toEqual({
      status: 400,
      error: 'the body is not valid UTF-8',
    });
    expect((await post('{}', 'application/x-ndjson; charset=latin1')).status).toBe(415);
    expect(await hostileItems()).toEqual([]);
  });
});

/**
 * Issue 15: an export read 500 items a page and all their history rows in one query, so 60 items
 * of 1 MB with 6 versions each grew a process by 800 MB an export, and 8 at once killed it. Every
 * query of an export now returns at most EXPORT_CHUNK_BYTES of stored JSON (and the row past it).
 */
describe('an export of large items reads them a bounded chunk at a time', () => {
  const ITEMS = 12;
  const VERSIONS = 3;
  const blob = 'x'.repeat(990_000);
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
    for (let v = 0; v < VERSIONS; v++)
      for (let i = 0; i < ITEMS; i++) {
        const res = await fetch(`${h.url}/v1/store/items`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            namespace: ['big', String(i).padStart(2, '0')],
            key: 'k',
            value: { v, blob },
            index: false,
          }),
        });
        expect(res.status).toBe(200);
        // Read, or its connection stays busy and holds the server's close for the keep-alive timeout.
        await res.text();
      }
  }, 120_000);
  afterAll(async () => h?.stop());

  it('no query returns more than a chunk, and the file is every item followed by its history', async () => {
    // The runtime's own Postgres, each result weighed as it comes back.
    const db = h.runtime.db;
    let largest = 0;
    const weighed: Db = Object.create(db) as Db;
    weighed.query = async (...args: Parameters<Db['query']>) => {
      const res = await db.query(...args);
      largest = Math.max(
        largest,
        res.rows.reduce<number>((sum, r) => sum + JSON.stringify(r).length, 0),
      );
      return res as never;
    };
    const lines: { type: string; namespace: string[]; version: number }[] = [];
    for await (const line of exportItems(weighed, tables(h.env.DATABASE_SCHEMA), {
      prefixes: [['big']],
      history: true,
    }))
      lines.push({ type: line.type, namespace: line.namespace, version: line.version });
    // A chunk, and the row that passed it (an update row carries two documents).
    expect(largest).toBeLessThan(EXPORT_CHUNK_BYTES + 2.2 * blob.length);
    expect(lines).toEqual(
      Array.from({ length: ITEMS }, (_, i) => {
        const namespace = ['big', String(i).padStart(2, '0')];
        return [
          { type: 'item', namespace, version: VERSIONS },
          ...Array.from({ length: VERSIONS }, (_, v) => ({ type: 'history', namespace, version: v + 1 })),
        ];
      }).flat(),
    );
  });
});

describe("the SDK store's import", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
  });
  afterAll(async () => h?.stop());

  it("takes the file's text as the HTTP client does, its lines, and refuses what is neither", async () => {
    const engram = sdkClient(h);
    try {
      await engram.store.put(['notes', 'from'], 'k', { content: 'kept across the move' });
      const file: string[] = [];
      for await (const line of engram.store.export(['notes', 'from'], { history: true }))
        file.push(line.replaceAll('"from"', '"to-text"'));
      // A string is iterable too, by character: line 1 was "not JSON" read that way.
      expect(await engram.store.import(`${file.join('\n')}\n`)).toEqual({ items: 1, history: 1, expired: 0 });
      expect((await engram.store.get(['notes', 'to-text'], 'k'))?.value).toEqual({ content: 'kept across the move' });
      const lines = file.map((l) => l.replaceAll('"to-text"', '"to-lines"'));
      expect(await engram.store.import(lines)).toEqual({ items: 1, history: 1, expired: 0 });
      await expect(engram.store.import(42 as never)).rejects.toThrow(/pass an export file: its text, or its lines/);
      await expect(engram.store.import([lines[0], 42] as never)).rejects.toThrow(/line 2 is not a string/);
    } finally {
      await engram.close();
    }
  });
});
