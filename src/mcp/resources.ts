import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { fillNamespace } from '../core/namespace-template.js';
import { profileKey } from '../memory/kinds.js';
import type { McpDeps } from './server.js';

/** A profile kind's resource: `engram://profiles/<kind>`. */
export const profileUri = (kind: string) => `engram://profiles/${kind}`;

/**
 * One resource per profile kind: the session's user's profile document (JSON; `null` until a
 * reflection creates it). Read fresh each time: reflections patch profiles in the background.
 */
export function registerProfileResources(
  server: McpServer,
  deps: Pick<McpDeps, 'kinds' | 'memories'>,
  context: Record<string, string>,
): void {
  for (const kind of deps.kinds) {
    if (kind.mode !== 'profile') continue;
    const namespace = fillNamespace(kind.namespace, context, kind.name);
    server.registerResource(
      kind.name,
      profileUri(kind.name),
      { description: `The user's "${kind.name}" profile: ${kind.description}`, mimeType: 'application/json' },
      async (uri) => {
        const item = await deps.memories.get(namespace, profileKey(kind));
        return {
          contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(item?.value ?? null) }],
        };
      },
    );
  }
}
