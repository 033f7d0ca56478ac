import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOC_PATH, renderModelRequests } from '../scripts/model-requests.js';

/** Keeps docs/model-requests.md true: it must be exactly what the code sends today. */
describe('docs/model-requests.md', () => {
  it('matches the requests the code sends (else run `npm run docs:model-requests`)', async () => {
    const rendered = await renderModelRequests();
    expect(rendered).toContain('"name": "patch_user_profile"');
    expect(readFileSync(DOC_PATH, 'utf8')).toBe(rendered);
  });
});
