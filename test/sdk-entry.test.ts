import { readFileSync } from 'node:fs';
import ts from 'typescript';
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

  it('names the input and result type of every call, as engram/client does', () => {
    const exported = (entry: string) => {
      const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, noEmit: true, skipLibCheck: true });
      const checker = program.getTypeChecker();
      const file = program.getSourceFile(entry) as ts.SourceFile;
      return checker.getExportsOfModule(checker.getSymbolAtLocation(file) as ts.Symbol).map((s) => s.name);
    };
    const sdk = exported('src/sdk/index.ts');
    // What a wrapper around `engram.search`, `store.batch`, `store.revert` or `store.export` is typed with.
    for (const name of [
      'EnqueueInput',
      'EnqueueResult',
      'SearchInput',
      'RecallInput',
      'RecallResult',
      'EraseInput',
      'EraseResult',
      'BatchResult',
      'HistoryInput',
      'RevertItemInput',
      'RevertChangesInput',
      'ExportScope',
      'ExportOptions',
    ])
      expect(sdk, name).toContain(name);
    // Both entries make the same calls: a type the HTTP client names, the SDK names too.
    const client = exported('src/client/index.ts').filter(
      (n) => !/^(EngramHttpClient|HttpStoreClient|HttpToolBackend|CallOptions)/.test(n),
    );
    expect(client.filter((n) => !sdk.includes(n))).toEqual([]);
  });
});
