import type { FastifyInstance } from 'fastify';

/**
 * Every route a running Fastify app serves, as `METHOD /pattern` (`GET /v1/store/items`), read
 * from the app itself: the fuzz test (test/api-fuzz.test.ts) fails for a served route that no
 * generator covers, so a route added later cannot go unfuzzed. Fastify lists routes only as the
 * tree of `printRoutes`; with `commonPrefix: false` each node is its parent's path plus its own
 * segment, and names its methods, which is all this reads. Fastify's own HEAD twins of GET
 * routes are listed too.
 */
export function servedRoutes(app: FastifyInstance): string[] {
  const routes = new Set<string>();
  /** The full path of the node last seen at each depth. */
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? '').length / 4;
    const path = (stack[depth - 1] ?? '') + (m[2] ?? '');
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (m[3] ?? '').split(',').map((s) => s.trim()))
      if (method && method !== '-') routes.add(`${method} ${path}`);
  }
  if (routes.size === 0) throw new Error(`no routes read from printRoutes:\n${app.printRoutes()}`);
  return [...routes].sort();
}
