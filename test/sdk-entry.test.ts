import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { moduleGraph } from './helpers/module-graph.js';

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
