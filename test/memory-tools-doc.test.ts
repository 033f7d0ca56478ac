import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOC_PATH, renderMemoryTools } from '../scripts/memory-tools.js';

/** Keeps docs/memory-tools.md true: its definitions must be exactly what the code builds today. */
describe('docs/memory-tools.md', () => {
  it('matches the tools the code defines (else run `npm run docs:memory-tools`)', async () => {
    const rendered = await renderMemoryTools();
    expect(rendered).toContain('"name": "manage_memory"');
    expect(rendered).toContain('"name": "memory_history"');
    expect(readFileSync(DOC_PATH, 'utf8')).toBe(rendered);
  });
});
