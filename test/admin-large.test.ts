import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminBrowser } from './helpers/chromium.js';
import { startHarness, type Harness } from './helpers/harness.js';

/**
 * The memory browser over large memories and long result lists, in a real runtime: pages stay
 * bounded, every link it offers leads to a page, and what the store holds can be saved back.
 */
const PASSWORD = 'correct-horse-battery';

describe('admin memory browser, large memories', () => {
  let h: Harness;
  let page: Page;
  let closeBrowser: () => Promise<void>;
  const store = () => h.runtime.storeApi;
  const auth = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
  const get = async (path: string) => {
    const res = await fetch(`${h.url}/admin/memories${path}`, { headers: { authorization: auth } });
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    // The smallest answer budget the store allows, so that a history passes it with few versions;
    // items indexed by `content` alone, so that a large one is embedded (and saved) as a small one.
    h = await startHarness({
      roles: ['api'],
      env: {
        ADMIN_PASSWORD: PASSWORD,
        STORE_ANSWER_MAX_BYTES: String(8 * 1024 * 1024),
        STORE_INDEX_FIELDS: 'content',
      },
    });
    ({ page, close: closeBrowser } = await adminBrowser(PASSWORD));
  });
  afterAll(async () => {
    await closeBrowser?.();
    await h?.stop();
  });

  it("shows at most 100 of a history entry's changes, and stays responsive", async () => {
    // Each version shifts a list of 5,000 numbers: every element changes.
    const list = (v: number) => Array.from({ length: 5_000 }, (_, i) => i + v);
    for (let v = 0; v < 3; v++)
      await store().put({
        namespace: ['big'],
        key: 'list',
        index: false,
        value: { content: 'numbers', list: list(v) },
      });
    const { status, text } = await get('/item?ns=big&key=list');
    expect(status).toBe(200);
    // v1 adds two fields; v2 and v3 change 5,000 elements each, shown 100 at a time.
    expect(text.match(/<tr class="changed">/g)).toHaveLength(200);
    expect(text).toContain('Only the first 100 changes of v2 are shown.');
    expect(text).toContain('Only the first 100 changes of v3 are shown.');
    expect(text.length).toBeLessThan(1_000_000);
  });

  it('pages a history whose documents pass the answer budget, instead of refusing the page', async () => {
    // 8 versions of 700 KB: before and after of each row pass 8 MiB together.
    for (let v = 1; v <= 8; v++)
      await store().put({ namespace: ['big'], key: 'blob', index: false, value: { v, blob: 'a'.repeat(700_000) } });
    const first = await get('/item?ns=big&key=blob');
    expect(first.status).toBe(200);
    expect(first.text).toContain('<strong>v1 insert</strong>');
    // The rest is a click away, from where the first page ended.
    const next = /href="([^"]*hoffset=(\d+))">Next history/.exec(first.text);
    expect(next).not.toBeNull();
    const rest = await get(next![1]!.replaceAll('&amp;', '&').replace('/admin/memories', ''));
    expect(rest.status).toBe(200);
    expect(rest.text).toContain('<strong>v8 update</strong>');
    // The editor works on the memory as usual.
    expect(first.text).toContain('name="ifVersion"');
  });

  it('lists memories that pass the answer budget together, a few to a page', async () => {
    for (let i = 0; i < 12; i++)
      await store().put({ namespace: ['wide'], key: `m${i}`, index: false, value: { blob: 'b'.repeat(700_000) } });
    const keys = new Set<string>();
    for (let path: string | undefined = '?ns=wide'; path;) {
      const { status, text } = await get(path);
      expect(status).toBe(200);
      expect(text).not.toContain('role="alert"');
      for (const [, key] of text.matchAll(/key=(m\d+)">/g)) keys.add(key!);
      path = /href="\/admin\/memories([^"]*)">Next memories/.exec(text)?.[1]?.replaceAll('&amp;', '&');
    }
    expect(keys.size).toBe(12);
  });

  it('offers no page of a hybrid search past the 50 it ranks, and every link it offers answers', async () => {
    for (let i = 0; i < 60; i++)
      await store().put({ namespace: ['hp', `u${i}`], key: 'k', value: { content: `User likes dish number ${i}` } });
    await page.goto(`${h.url}/admin/memories?ns=hp`);
    await page.getByLabel('Search').fill('likes dish');
    await page.getByRole('button', { name: 'Search' }).click();
    const pages: number[] = [];
    for (;;) {
      await page.waitForLoadState();
      expect(await page.getByRole('alert').count()).toBe(0);
      pages.push(await page.locator('tbody tr').count());
      const next = page.getByRole('link', { name: /Next memories/ });
      if ((await next.count()) === 0) break;
      await next.click();
    }
    expect(pages).toEqual([25, 25]);
    // Further on, by one ranking alone: every memory is there.
    await page.getByRole('link', { name: 'text', exact: true }).click();
    await page.waitForLoadState();
    let seen = await page.locator('tbody tr').count();
    for (let next = page.getByRole('link', { name: /Next memories/ }); await next.count();) {
      await next.click();
      await page.waitForLoadState();
      expect(await page.getByRole('alert').count()).toBe(0);
      seen += await page.locator('tbody tr').count();
    }
    expect(seen).toBe(60);
  });

  it('says a hybrid search cannot rank memories this large, and links to the rankings that can', async () => {
    // Each ranking's best 50 are read whole: 2 x 20 x 400 KB passes the 8 MiB budget at any page.
    for (let i = 0; i < 20; i++)
      await store().put({
        namespace: ['hl', `u${i}`],
        key: 'k',
        value: { content: `User likes dish number ${i}`, blob: 'b'.repeat(400_000) },
      });
    await page.goto(`${h.url}/admin/memories?ns=hl`);
    await page.getByLabel('Search').fill('likes dish');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState();
    await expect(page.getByRole('alert').textContent()).resolves.toContain('too large for a hybrid search');
    for (const mode of ['vector', 'text']) {
      await page.getByRole('link', { name: mode, exact: true }).click();
      await page.waitForLoadState();
      expect(await page.getByRole('alert').count()).toBe(0);
      expect(await page.locator('tbody tr').count()).toBeGreaterThan(0);
      await page.goBack();
    }
  });

  it('saves a large memory back from its editor, as the store holds it', async () => {
    // 800 KB of JSON, 2.6 million characters indented.
    const value = { content: 'objects', list: Array.from({ length: 100_000 }, (_, i) => ({ a: i % 10 })) };
    await store().put({ namespace: ['big'], key: 'objects', value });
    await page.goto(`${h.url}/admin/memories/item?ns=big&key=objects`);
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/item/edit')),
      page.getByRole('button', { name: 'Save' }).click(),
    ]);
    expect(response.status()).toBe(303);
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Saved as version 2');
    expect(await store().get({ namespace: ['big'], key: 'objects' })).toMatchObject({ version: 2, value });
  });
});
