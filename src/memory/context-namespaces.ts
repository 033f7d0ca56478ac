import { fillNamespace, templateVariables } from '../core/namespace-template.js';
import { InputError } from '../errors.js';
import type { RecallKind } from './recall.js';

/**
 * The namespaces that belong to a context (such as `{ userId }`): those of the kinds whose
 * template the context fills and that name one of its keys other than `tenant` (a
 * `["{tenant}", "shared"]` or `["global"]` namespace is everyone's, not this user's). What an
 * erase and an export by context cover.
 */
export function namespacesOfContext(kinds: readonly RecallKind[], context: Record<string, string>): string[][] {
  const own = (v: string) => v !== 'tenant' && context[v] !== undefined;
  const covered = kinds.filter((k) => {
    const vars = templateVariables(k.namespace);
    return vars.some(own) && vars.every((v) => context[v] !== undefined);
  });
  if (covered.length === 0) throw new InputError("the context fills no memory kind's namespace");
  const unique = new Map(
    covered.map((k) => fillNamespace(k.namespace, context, k.name)).map((ns) => [JSON.stringify(ns), ns]),
  );
  return [...unique.values()];
}
