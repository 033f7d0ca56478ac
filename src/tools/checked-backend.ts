import type { KindRoute } from '../core/kind-route.js';
import { InputError } from '../errors.js';
import type { MemoryKind } from '../memory/kinds.js';
import type { MemoryToolBackend } from './backend.js';
import { kindsMismatch } from './create-session.js';

/**
 * A backend whose calls first check, once, that the session's kinds are the service's (same
 * names, namespaces and modes: kindsMismatch), so that a tool's memories land where the
 * service's reflections look. A check that fails (the service out of reach, other kinds) rejects
 * the call, and runs again on the next: the service may be back, or its kinds changed.
 */
export function checkedBackend(
  backend: MemoryToolBackend,
  kinds: readonly MemoryKind[],
  serviceKinds: () => Promise<readonly KindRoute[]>,
): MemoryToolBackend {
  let checked: Promise<void> | null = null;
  const check = () =>
    (checked ??= serviceKinds()
      .then((service) => {
        const problem = kindsMismatch(kinds, service);
        if (problem) throw new InputError(problem);
      })
      .catch((err: unknown) => {
        checked = null;
        throw err;
      }));
  return {
    search: (q) => check().then(() => backend.search(q)),
    apply: (c) => check().then(() => backend.apply(c)),
  };
}
