import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Every module a file loads when it runs, following its value imports and re-exports (type-only
 * ones vanish at compile time), and the packages they name.
 */
function moduleGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [entry];
  while (pending.length) {
    const file = pending.pop() as string;
    if (files.has(file)) continue;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const m of source.matchAll(
      /^(?:import|export)\s+(?!type\s)[^;]*?\s+from\s+'([^']+)'|^import\s+'([^']+)'/gms,
    )) {
      const spec = (m[1] ?? m[2]) as string;
      if (spec.startsWith('.')) pending.push(normalize(join(dirname(file), spec.replace(/\.js$/, '.ts'))));
      else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
    }
  }
  return { files, packages };
}

describe('the engram/sdk entry', () => {
  it("loads none of the service's own parts: no HTTP server, Bull Board, cron, workers, MCP server or chat model", () => {
    const { files, packages } = moduleGraph('src/sdk/index.ts');
    // The walk itself works: it reaches what the SDK does need.
    expect(files).toContain('src/queue/enqueue.ts');
    expect(files).toContain('src/store/store-service.ts');
    expect(files).toContain('src/tools/session.ts');
    expect(packages).toContain('ioredis');
    expect(
      [...files].filter(
        (f) =>
          f.startsWith('src/api/') ||
          f.startsWith('src/app/') ||
          f.startsWith('src/mcp/') ||
          f === 'src/llm/chat-model.ts',
      ),
    ).toEqual([]);
    expect(
      [...packages].filter((p) =>
        [
          'fastify',
          '@bull-board/api',
          '@bull-board/fastify',
          'node-cron',
          'prom-client',
          '@modelcontextprotocol/sdk',
        ].includes(p),
      ),
    ).toEqual([]);
  });

  it('is the package export `engram/sdk`', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { default: string }> };
    expect(pkg.exports['./sdk']?.default).toBe('./dist/src/sdk/index.js');
  });
});
