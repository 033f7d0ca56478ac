import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { tables } from '../src/store/sql.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MemoryItem } from '../src/store/types.js';
import { foodieModel } from './fake-model/foodie.js';
import { adminBrowser } from './helpers/chromium.js';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';

/**
 * The memory browser (/admin/memories) in a real headless Chromium, over a real runtime: the
 * pages an operator uses to find, fix, revert and erase memories, each checked in the store.
 * With ADMIN_SCREENSHOTS=<dir> (`npm run docs:admin-screenshots`) it also saves each page.
 */
const PASSWORD = 'correct-horse-battery';
const SHOTS = process.env.ADMIN_SCREENSHOTS;

describe('admin memory browser', () => {
  let h: Harness;
  let closeBrowser: (() => Promise<void>) | undefined;
  let page: Page;
  const notes = ['notes', 'u1'];
  /** The key of u1's ramen memory, which two reflection jobs wrote. */
  let ramenKey = '';
  const store = () => h.runtime.storeApi;
  const auth = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
  const shot = async (name: string) => {
    if (SHOTS) await page.screenshot({ path: join(SHOTS, `admin-${name}.png`), fullPage: true });
  };
  const contents = async (ns: string[]) =>
    (await store().search({ namespacePrefix: ns, limit: 50, refreshTtl: false }))
      .map((i) => String(i.value.content))
      .sort();
  const say = async (threadId: string, content: string) => {
    await h.runtime.producer.enqueue({ threadId, context: { userId: 'u1' }, messages: [{ role: 'user', content }] });
  };

  beforeAll(async () => {
    h = await startHarness({
      roles: ['api', 'reflection'],
      chat: foodieModel,
      env: { ADMIN_PASSWORD: PASSWORD, DEBOUNCE_MS: '100' },
    });
    // Reflections through the real worker, so that history names real BullMQ jobs.
    await say('conv-1', 'I love ramen! I also like pasta.');
    await waitFor(async () => (await contents(['memories', 'u1'])).length === 2);
    await say('conv-2', 'These days I like miso ramen, and I no longer like pasta.');
    await waitFor(async () => (await contents(['memories', 'u1'])).length === 1);
    await store().put({ namespace: notes, key: 'tea', value: { content: 'User drinks green tea every morning' } });
    await store().put({ namespace: notes, key: 'bike', value: { content: 'User cycles to work' } });
    await store().put({ namespace: ['notes', 'u2'], key: 'tea', value: { content: 'User dislikes tea' } });

    ({ page, close: closeBrowser } = await adminBrowser(PASSWORD, { width: 1280, height: 800 }));
  });
  afterAll(async () => {
    await closeBrowser?.();
    await h?.stop();
  });

  it('needs the admin password, and refuses a form posted from another site', async () => {
    expect((await fetch(`${h.url}/admin/memories`)).status).toBe(401);
    expect((await fetch(`${h.url}/admin/memories/style.css`)).status).toBe(401);
    const wrong = `Basic ${Buffer.from('admin:not-the-password').toString('base64')}`;
    expect(
      (await fetch(`${h.url}/admin/memories/item?ns=notes&ns=u1&key=tea`, { headers: { authorization: wrong } }))
        .status,
    ).toBe(401);
    const post = (origin: string | null) =>
      fetch(`${h.url}/admin/memories/item/delete`, {
        method: 'POST',
        headers: {
          authorization: auth,
          'content-type': 'application/x-www-form-urlencoded',
          ...(origin && { origin }),
        },
        body: 'ns=notes&ns=u1&key=tea&ifVersion=1',
      });
    expect((await post('https://evil.example')).status).toBe(403);
    expect((await post(null)).status).toBe(403);
    expect(await store().get({ namespace: notes, key: 'tea' })).toMatchObject({ version: 1 });
  });

  it('answers malformed input with a page naming what is wrong, and writes nothing', async () => {
    const get = async (path: string) => {
      const res = await fetch(`${h.url}/admin/memories${path}`, { headers: { authorization: auth } });
      return { status: res.status, text: await res.text() };
    };
    const nul = await get('/item?ns=notes&ns=u1&key=a%00b');
    expect(nul.status).toBe(400);
    expect(nul.text).toContain('key');
    expect((await get('/item?ns=notes&ns=u1&key=a&key=b')).text).toContain('given more than once');
    expect((await get(`/?${Array.from({ length: 17 }, () => 'ns=a').join('&')}`)).status).toBe(400);
    const edit = await fetch(`${h.url}/admin/memories/item/edit`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', origin: h.url },
      body: 'ns=notes&ns=u1&key=tea&ifVersion=1e3&value=%7B%7D',
    });
    expect(edit.status).toBe(400);
    expect(await edit.text()).toContain('ifVersion');
    // Values the store cannot hold: refused on the memory's page, with the text kept.
    for (const value of ['{"a":'.repeat(5_000) + '1' + '}'.repeat(5_000), '{"content":"\\ud800"}', '[1]']) {
      const res = await fetch(`${h.url}/admin/memories/item/edit`, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded', origin: h.url },
        body: new URLSearchParams([
          ['ns', 'notes'],
          ['ns', 'u1'],
          ['key', 'tea'],
          ['ifVersion', '1'],
          ['value', value],
        ]).toString(),
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('Not saved');
    }
    // An escaped value: the page shows markup in a memory as text, never as markup.
    await store().put({ namespace: ['notes', 'x'], key: '<b>k</b>', value: { content: '<script>alert(1)</script>' } });
    const page = await get('/item?ns=notes&ns=x&key=%3Cb%3Ek%3C%2Fb%3E');
    expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.text).not.toContain('<script>');
    await store().delete({ namespace: ['notes', 'x'], key: '<b>k</b>' });
    expect(await store().get({ namespace: notes, key: 'tea' })).toMatchObject({ version: 1 });
  });

  it('browses prefixes label by label to a namespace, and searches it', async () => {
    await page.goto(`${h.url}/admin/memories`);
    await shot('namespaces');
    await page.getByRole('link', { name: 'notes', exact: true }).click();
    await expect.poll(() => page.locator('h1').innerText()).toBe('notes');
    await page.getByRole('link', { name: 'u1', exact: true }).click();
    await expect.poll(() => page.locator('h1').innerText()).toBe('notes / u1');
    expect(await page.getByRole('link', { name: 'bike' }).count()).toBe(1);

    await page.getByLabel('Search').fill('green tea');
    await page.getByLabel('Ranking').selectOption('hybrid');
    await page.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('tbody tr');
    await expect.poll(() => rows.first().textContent()).toContain('green tea');
    // The prefix is kept: u2's tea is not under notes / u1.
    expect(await page.locator('tbody').textContent()).not.toContain('dislikes');
    await shot('search');
  });

  it('edits a memory with compare-and-set, and shows a stale edit refused', async () => {
    await page.getByRole('link', { name: 'tea', exact: true }).click();
    await expect.poll(() => page.locator('h1').innerText()).toBe('tea');
    await page.getByLabel(/^Value/).fill(JSON.stringify({ content: 'User drinks jasmine tea' }));
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Saved as version 2');
    expect(await store().get({ namespace: notes, key: 'tea' })).toMatchObject({
      version: 2,
      value: { content: 'User drinks jasmine tea' },
    });
    await shot('memory');

    // Someone else writes while this page is open: its save must not overwrite theirs.
    await store().put({ namespace: notes, key: 'tea', value: { content: 'User drinks oolong' }, ifVersion: 2 });
    await page.getByLabel(/^Value/).fill(JSON.stringify({ content: 'User drinks black tea' }));
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/item/edit')),
      page.getByRole('button', { name: 'Save' }).click(),
    ]);
    expect(response.status()).toBe(409);
    const alert = await page.getByRole('alert').textContent();
    expect(alert).toContain('changed since you loaded this page');
    expect(alert).toContain('it is now at version 3');
    // The refused text is kept for the operator to compare and save again.
    expect(await page.getByLabel(/^Value/).inputValue()).toContain('black tea');
    expect(await store().get({ namespace: notes, key: 'tea' })).toMatchObject({
      version: 3,
      value: { content: 'User drinks oolong' },
    });
    await shot('stale-edit');
  });

  it('reverts to version 1 from a history row, and refuses a value that is not JSON', async () => {
    await page.goto(`${h.url}/admin/memories/item?ns=notes&ns=u1&key=tea`);
    await page.getByLabel(/^Value/).fill('{"content": ');
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('not JSON');

    await page.getByRole('button', { name: 'Revert to v1' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('now at version 4');
    expect(await store().get({ namespace: notes, key: 'tea' })).toMatchObject({
      version: 4,
      value: { content: 'User drinks green tea every morning' },
    });
    const history = await store().history({ namespace: notes, key: 'tea' });
    expect(history.map((r) => r.actor)).toEqual(['api', 'admin', 'api', 'revert:admin']);
    await shot('history');
  });

  it('deletes a memory with compare-and-set, keeping its history', async () => {
    // A stale page first: tea changed after it was loaded, so its delete is refused.
    await page.goto(`${h.url}/admin/memories/item?ns=notes&ns=u1&key=tea`);
    await store().put({ namespace: notes, key: 'tea', value: { content: 'User drinks mint tea' }, ifVersion: 4 });
    const [refused] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/item/delete')),
      page.getByRole('button', { name: 'Delete this memory' }).click(),
    ]);
    expect(refused.status()).toBe(409);
    expect(await store().get({ namespace: notes, key: 'tea' })).toMatchObject({ version: 5 });

    await page.goto(`${h.url}/admin/memories/item?ns=notes&ns=u1&key=bike`);
    await page.getByRole('button', { name: 'Delete this memory' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Deleted. Its history is kept below');
    expect(await store().get({ namespace: notes, key: 'bike' })).toBeNull();
    const history = await store().history({ namespace: notes, key: 'bike' });
    expect(history.map((r) => [r.op, r.actor])).toEqual([
      ['insert', 'api'],
      ['delete', 'admin'],
    ]);
    // The page still shows the memory's history, with the way back.
    expect(await page.locator('main').textContent()).toContain('This memory does not exist now');
    expect(await page.getByRole('button', { name: 'Revert to v1' }).count()).toBe(1);
  });

  it("shows an expired memory's history without its documents, gone with the expiry", async () => {
    await store().put({
      namespace: ['notes', 'u3'],
      key: 'trip',
      value: { content: 'User flies to Lima' },
      ttl: 60_000,
    });
    await h.runtime.db.query(
      `update ${tables(h.env.DATABASE_SCHEMA).memories} set expires_at = now() - interval '1 second' where key = 'trip'`,
    );
    expect(await h.runtime.store.sweepExpired('sweeper')).toBe(1);
    const res = await fetch(`${h.url}/admin/memories/item?ns=notes&ns=u3&key=trip`, {
      headers: { authorization: auth },
    });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(html).toContain('Not kept: the memory expired, and its documents went with it.');
    expect(html).not.toContain('Lima');
  });

  it("links a history row to the Bull Board job that wrote it, and undoes that job's changes", async () => {
    const [ramen] = (await store().search({ namespacePrefix: ['memories', 'u1'], refreshTtl: false })) as MemoryItem[];
    ramenKey = ramen!.key;
    const rows = await store().history({ namespace: ['memories', 'u1'], key: ramenKey });
    const job = rows.at(-1)!.actor;
    // The job's id, and its creation time, which tells it from a job of the same id after Redis lost its data.
    expect(job).toMatch(/^reflection:\d+@\d+$/);
    const jobId = job.slice('reflection:'.length, job.indexOf('@'));
    await page.goto(`${h.url}/admin/memories?ns=memories&ns=u1`);
    await page.getByRole('link', { name: ramenKey }).click();
    const link = page.getByRole('link', { name: job });
    expect(await link.getAttribute('href')).toBe(`/admin/queues/queue/reflection/${jobId}`);

    await page.getByRole('button', { name: `Undo everything ${job} changed` }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('2 memories put back, 0 deleted');
    expect(await contents(['memories', 'u1'])).toEqual(['User likes pasta', 'User loves ramen']);

    await link.click();
    await page.waitForURL(`**/admin/queues/queue/reflection/${jobId}`);
    await expect.poll(() => page.locator('main').innerText(), { timeout: 15_000 }).toContain('conv-2');
    await shot('job');
  });

  it('erases a user behind a confirmation and shows the counts', async () => {
    await page.goto(`${h.url}/admin/memories`);
    await page.getByRole('link', { name: 'Erase', exact: true }).click();
    await page.getByLabel('User id').fill('u1');
    await page.getByRole('button', { name: 'Review the erase of this user…' }).click();
    await expect.poll(() => page.locator('h1').innerText()).toBe('Erase user u1?');
    expect(await page.locator('main').textContent()).toContain('memories / u1');
    await shot('erase-confirm');
    // Nothing goes until the box is ticked: the browser keeps the form, and the server refuses it.
    await page.getByRole('button', { name: 'Erase permanently' }).click();
    const unticked = await fetch(`${h.url}/admin/memories/erase`, {
      method: 'POST',
      headers: {
        authorization: auth,
        'content-type': 'application/x-www-form-urlencoded',
        origin: h.url,
      },
      body: 'userId=u1',
    });
    expect(unticked.status).toBe(400);
    expect(await unticked.text()).toContain('tick the box');
    expect(await contents(['memories', 'u1'])).toHaveLength(2);

    await page.getByLabel('I understand that this erases them permanently').check();
    await page.getByRole('button', { name: 'Erase permanently' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Erased 1 namespace: 2 memories');
    expect(await contents(['memories', 'u1'])).toEqual([]);
    expect(await store().history({ namespace: ['memories', 'u1'], key: ramenKey })).toEqual([]);
    // Another user's memories stay.
    expect(await contents(['notes', 'u2'])).toEqual(['User dislikes tea']);
    await shot('erased');
  });
});
