import type { Env } from '../config/env.js';
import { PermanentError } from '../errors.js';
import { defaultKinds, type MemoryKind } from '../memory/kinds.js';
import { loadKindsFile } from '../memory/kinds-file.js';

/**
 * The memory kinds a process runs with: the ones it was given, else ENGRAM_KINDS_FILE's, else
 * the default kind. With tenant keys, every kind must write under the tenant, or a tenant's
 * memories would land in namespaces its key cannot reach (or another tenant's): refused at start.
 */
export function processKinds(env: Env, given?: MemoryKind[]): MemoryKind[] {
  const kinds = given ?? (env.ENGRAM_KINDS_FILE ? loadKindsFile(env.ENGRAM_KINDS_FILE) : defaultKinds);
  const untenanted = env.API_KEYS?.length ? kinds.filter((k) => k.namespace[0] !== '{tenant}') : [];
  if (untenanted.length) {
    throw new PermanentError(
      `API_KEYS is set, so every memory kind's namespace must start with "{tenant}"; not: ${untenanted.map((k) => `${k.name} ${JSON.stringify(k.namespace)}`).join(', ')}`,
    );
  }
  return kinds;
}
