import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { moduleGraph } from './helpers/module-graph.js';

describe('the engram/client entry', () => {
  it("loads zod and engram's schemas, and none of Redis, Postgres, the server or a model client", () => {
    const { files, packages } = moduleGraph('src/client/index.ts');
    // The walk itself works: it reaches the transport and the answers' schemas.
    expect(files).toContain('src/client/http.ts');
    expect(files).toContain('src/api/schemas.ts');
    // ...and the memory tools' session, which runs in the client's process.
    expect(files).toContain('src/client/memory-tools.ts');
    expect(files).toContain('src/tools/session.ts');
    expect([...packages]).toEqual(['zod']);
    // Of the server, only what describes the API's answers (schemas import only schemas).
    expect([...files].filter((f) => f.startsWith('src/api/'))).toEqual(['src/api/schemas.ts']);
    expect(
      [...files].filter((f) => /^src\/(app|sdk|llm|observability|config)\//.test(f) || f.endsWith('-db.ts')),
    ).toEqual([]);
  });

  it('is the package export `engram/client`, with its types', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      exports: Record<string, { types: string; default: string }>;
    };
    expect(pkg.exports['./client']).toEqual({
      types: './dist/src/client/index.d.ts',
      default: './dist/src/client/index.js',
    });
  });
});
