import { fillNamespace, templateVariables } from '../core/namespace-template.js';
import { InputError } from '../errors.js';
import type { RecallKind } from './recall.js';

/**
 * Where a context's namespaces are: `prefixes` cover what is under them too, `namespaces` only
 * themselves.
 */
export interface ContextScope {
  prefixes: string[][];
  namespaces: string[][];
}

/**
 * The namespaces that belong to a context (such as `{ userId }`): those of the kinds whose
 * template the context fills and that name one of its keys other than `tenant` (a
 * `["{tenant}", "shared"]` or `["global"]` namespace is everyone's, not this user's). What an
 * erase and an export by context cover. Each is a prefix (what an application stored under it
 * is the context's too) unless a kind's template could fill a namespace under it for another
 * context: `["{orgId}"]` beside `["{orgId}", "{userId}"]` holds every user of the org, so the
 * org's namespace counts alone, never its users'; a user's `["{userId}"]` beside
 * `["{userId}", "{sessionId}"]` holds only that user's sessions, and stays a prefix.
 */
export function namespacesOfContext(kinds: readonly RecallKind[], context: Record<string, string>): ContextScope {
  const own = (v: string) => v !== 'tenant' && context[v] !== undefined;
  const covered = kinds.filter((k) => {
    const vars = templateVariables(k.namespace);
    return vars.some(own) && vars.every((v) => context[v] !== undefined);
  });
  if (covered.length === 0) throw new InputError("the context fills no memory kind's namespace");
  const unique = new Map(
    covered.map((k) => fillNamespace(k.namespace, context, k.name)).map((ns) => [JSON.stringify(ns), ns]),
  );
  const scope: ContextScope = { prefixes: [], namespaces: [] };
  for (const ns of unique.values()) (holdsOthers(kinds, ns, context) ? scope.namespaces : scope.prefixes).push(ns);
  return scope;
}

/**
 * Whether another context's namespaces may lie under `ns`: some kind's template is longer, could
 * fill its first labels as `ns`, and below them names a key this context gives (`{userId}` under
 * an org's `["o1"]`: other values are other users). One that names only keys the context leaves
 * open (`{sessionId}` under a user's `["u1"]`) fills this context's namespaces, all of them.
 */
function holdsOthers(kinds: readonly RecallKind[], ns: string[], context: Record<string, string>): boolean {
  return kinds.some(
    (k) =>
      k.namespace.length > ns.length &&
      ns.every((label, i) => isVariable(k.namespace[i] as string) || k.namespace[i] === label) &&
      templateVariables(k.namespace.slice(ns.length)).some((v) => context[v] !== undefined),
  );
}

const isVariable = (label: string) => templateVariables([label]).length > 0;
