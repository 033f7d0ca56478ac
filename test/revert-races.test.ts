import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../src/errors.js';
import { tables } from '../src/store/sql.js';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';

/**
 * A revert reads history, embeds the document it puts back (a model call, 100 ms and more),
 * then writes. Whatever happened to the key in between (an erase, an expiry, a later change
 * that leaves the live version where it was) must make the write a conflict: an erase or a TTL
 * is a promise about what engram keeps, and an undo must not silently reverse a later change.
 * The interleavings are made exact by holding the revert inside its embedding call.
 */
describe.each(backends)('a revert racing other writers on $name', (backend) => {
  let f: StoreFixture;
  let gate: { enter: () => void; wait: Promise<void> } | null = null;
  beforeAll(async () => {
    f = await openStore(backend);
    const embed = f.embedder.embed.bind(f.embedder);
    f.embedder.embed = async (texts: string[]) => {
      const g = gate;
      gate = null;
      if (g) {
        g.enter();
        await g.wait;
      }
      return embed(texts);
    };
  });
  afterAll(async () => f?.close());

  /** The next embedding call stops until `release()`; `entered` resolves once it has. */
  const hold = () => {
    let enter!: () => void;
    let release!: () => void;
    const entered = new Promise<void>((r) => (enter = r));
    gate = { enter, wait: new Promise<void>((r) => (release = r)) };
    return { entered, release };
  };
  const outcome = (p: Promise<unknown>) =>
    p.then(
      () => 'applied',
      (err: unknown) => (err instanceof ConflictError ? (err.details as any).conflicts[0].reason : String(err)),
    );
  /** Every document the tables hold for a namespace, as one string. */
  const kept = async (ns: string[]) => {
    const t = tables(f.schema);
    const items = await f.db.query(`select value from ${t.memories} where namespace = $1`, [ns]);
    const history = await f.db.query(`select before, after from ${t.history} where namespace = $1`, [ns]);
    return JSON.stringify([items.rows, history.rows]);
  };
  const erase = (ns: string[]) =>
    f.memories.erase({ prefixes: [ns], threads: [], actor: 'test', scope: { namespacePrefix: ns } });

  it('does not write back a document erased while it embedded', async () => {
    const ns = ['race_erase', 'u1'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'my secret diagnosis' } });
    await f.store.delete({ namespace: ns, key: 'k' });
    const held = hold();
    const revert = outcome(f.store.revert({ namespace: ns, key: 'k', version: 1 }));
    await held.entered;
    await erase(ns);
    held.release();
    expect(await revert).toBe('gone');
    expect(await kept(ns)).not.toContain('secret');
  });

  it('does not write back a document erased while an undo by actor embedded, even forced', async () => {
    for (const force of [false, true]) {
      const ns = ['race_undo_erase', `u-${force}`];
      await f.store.put({ namespace: ns, key: 'k', value: { content: 'home address 12 Elm St' }, actor: 'api' });
      await f.store.delete({ namespace: ns, key: 'k', actor: 'cleanup-job-7' });
      const held = hold();
      const undo = outcome(f.store.revertChanges({ changedBy: 'cleanup-job-7', namespacePrefix: ns, force }));
      await held.entered;
      await erase(ns);
      held.release();
      expect(await undo).toBe('gone');
      expect(await kept(ns)).not.toContain('Elm St');
    }
  });

  it('does not bring back a document its TTL took while it embedded, nor an expired one', async () => {
    const ns = ['race_ttl', 'u1'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'kept briefly' }, ttl: 1_000 });
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'kept briefly, v2' }, ttl: 1_000 });
    const held = hold();
    const revert = outcome(f.store.revert({ namespace: ns, key: 'k', version: 1 }));
    await held.entered;
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await f.memories.sweepExpired('test')).toBe(1);
    held.release();
    expect(await revert).toBe('gone');
    expect(await kept(ns)).not.toContain('kept briefly');

    // Expired, not swept: nothing is embedded or written, and the history keeps its documents
    // until the first write that meets the expired item takes them.
    const ns2 = ['race_ttl', 'u2'];
    await f.store.put({ namespace: ns2, key: 'k', value: { content: 'short-lived' }, ttl: 200 });
    await new Promise((r) => setTimeout(r, 400));
    expect(await outcome(f.store.revert({ namespace: ns2, key: 'k', version: 1 }))).toBe('gone');
    expect(await f.store.get({ namespace: ns2, key: 'k' })).toBeNull();
  });

  it('refuses an undo whose item was created again and deleted since, though its version reads 0 again', async () => {
    const ns = ['race_aba', 'u1'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'A' }, actor: 'writer-1' });
    await f.store.delete({ namespace: ns, key: 'k', actor: 'job-x' });
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'B' }, actor: 'writer-2' });
    await f.store.delete({ namespace: ns, key: 'k', actor: 'writer-2' });
    expect(await outcome(f.store.revertChanges({ changedBy: 'job-x', namespacePrefix: ns }))).toBe('changed');
    expect(await f.store.get({ namespace: ns, key: 'k' })).toBeNull();
    // Forced, it overrides the later change, as documented.
    await f.store.revertChanges({ changedBy: 'job-x', namespacePrefix: ns, force: true });
    expect((await f.store.get({ namespace: ns, key: 'k' }))?.value).toEqual({ content: 'A' });
  });

  it('refuses a revert whose key changed while it embedded; reverts as before when nothing did', async () => {
    const ns = ['race_changed', 'u1'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'one' } });
    await f.store.delete({ namespace: ns, key: 'k' });
    const held = hold();
    const revert = outcome(f.store.revert({ namespace: ns, key: 'k', version: 1 }));
    await held.entered;
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'two' } });
    await f.store.delete({ namespace: ns, key: 'k' });
    held.release();
    expect(await revert).toBe('changed');
    expect(await f.store.get({ namespace: ns, key: 'k' })).toBeNull();

    const back = await f.store.revert({ namespace: ns, key: 'k', version: 1 });
    expect(back).toMatchObject({ value: { content: 'one' }, version: 3 });
  });
});
