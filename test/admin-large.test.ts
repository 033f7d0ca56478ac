import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

/**
 * The memory browser over large memories and long result lists, in a real runtime: pages stay
 * bounded, every link it offers leads to a page, and what the store holds can be saved back.
 */
const PASSWORD = 'correct-horse-battery';

describe('admin memory browser, large memories', () => {
  let h: Harness;
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
  });
  afterAll(async () => {
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
});
