import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminBrowser } from './helpers/chromium.js';
import { startHarness, type Harness } from './helpers/harness.js';

/**
 * Keys and namespace labels with line breaks, through the memory browser's forms in Chromium. A
 * browser submits every field's line breaks as CRLF, so a target posted from a hidden field
 * named another memory: here the one whose names hold `\r\n` where the other's hold `\n`.
 */
const PASSWORD = 'correct-horse-battery';

describe('admin memory browser, names with line breaks', () => {
  let h: Harness;
  let page: Page;
  let closeBrowser: () => Promise<void>;
  const store = () => h.runtime.storeApi;
  const lf = { namespace: ['nl', 'line1\nline2'], key: 'two\nlines' };
  const crlf = { namespace: ['nl', 'line1\r\nline2'], key: 'two\r\nlines' };
  const url = (at: { namespace: string[]; key?: string }) => {
    const q = new URLSearchParams();
    for (const label of at.namespace) q.append('ns', label);
    if (at.key !== undefined) q.append('key', at.key);
    return `${h.url}/admin/memories${at.key === undefined ? '' : '/item'}?${q.toString()}`;
  };

  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], env: { ADMIN_PASSWORD: PASSWORD } });
    ({ page, close: closeBrowser } = await adminBrowser(PASSWORD));
    await store().put({ ...lf, value: { content: 'User writes with LF' } });
    await store().put({ ...crlf, value: { content: 'User writes with CRLF' } });
  });
  afterAll(async () => {
    await closeBrowser?.();
    await h?.stop();
  });

  it('searches under the prefix whose page it is', async () => {
    await page.goto(url({ namespace: lf.namespace }));
    await page.getByLabel('Search').fill('writes');
    await page.getByLabel('Ranking').selectOption('text');
    await page.getByRole('button', { name: 'Search' }).click();
    await expect.poll(() => page.locator('tbody').textContent()).toContain('User writes with LF');
    expect(await page.locator('tbody').textContent()).not.toContain('CRLF');
    // The results' address names the prefix and the search, for the back button and a bookmark.
    expect(new URL(page.url()).searchParams.getAll('ns')).toEqual(lf.namespace);
    expect(new URL(page.url()).searchParams.get('q')).toBe('writes');
  });

  it('edits, reverts and deletes the memory whose page it is, not its CRLF namesake', async () => {
    await page.goto(url(lf));
    await page.getByLabel(/^Value/).fill(JSON.stringify({ content: 'User writes with LF, edited' }));
    await page.getByRole('button', { name: 'Save' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Saved as version 2');
    expect(await store().get(lf)).toMatchObject({ version: 2, value: { content: 'User writes with LF, edited' } });

    await page.getByRole('button', { name: 'Revert to v1' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('now at version 3');
    await page.getByRole('button', { name: 'Delete this memory' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Deleted.');
    expect(await store().get(lf)).toBeNull();
    expect((await store().history(lf)).map((r) => r.actor)).toEqual(['api', 'admin', 'revert:admin', 'admin']);
    // The other memory was never touched.
    expect(await store().get(crlf)).toMatchObject({ version: 1, value: { content: 'User writes with CRLF' } });
  });

  it("erases a prefix from its namespace's page, labels as they are", async () => {
    await store().put({ ...lf, value: { content: 'User writes with LF again' } });
    await page.goto(url({ namespace: lf.namespace }));
    await page.getByRole('link', { name: 'Erase everything under this prefix…' }).click();
    expect(await page.locator('main').textContent()).toContain('1 namespace');
    await page.getByLabel('I understand that this erases them permanently').check();
    await page.getByRole('button', { name: 'Erase permanently' }).click();
    await expect.poll(() => page.getByRole('status').textContent()).toContain('Erased 1 namespace: 1 memory');
    expect(await store().get(lf)).toBeNull();
    expect(await store().get(crlf)).toMatchObject({ version: 1 });
  });
});
