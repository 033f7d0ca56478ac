import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

/**
 * Every module a file loads when it runs, following its value imports and re-exports (type-only
 * ones vanish at compile time), and the packages they name.
 */
export function moduleGraph(entry: string): { files: Set<string>; packages: Set<string> } {
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
