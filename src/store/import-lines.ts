import { z } from 'zod';
import { AuthError, ConflictError, InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { exportLineSchema, type ExportedHistory, type ExportedItem } from './export-format.js';
import type { MemoryDb } from './memory-db.js';
import type { Namespace } from './types.js';

/** Items restored per transaction (with their history rows and one embedding call). */
const BATCH = 500;

/**
 * Imports an export file (export-format.ts), line by line: every line is checked first (a bad
 * line anywhere is a 400 naming it, and nothing is written), then the items go in batches, each
 * re-embedded by this deployment's model and restored with its versions and history. A key that
 * already exists here is a 409 naming it; batches before it stay (their count is in the error).
 * `within`: every namespace must start with it (a tenant imports into its own namespaces only).
 */
export async function importLines(
  memories: MemoryDb,
  embedder: Embedder | null,
  lines: AsyncIterable<string> | Iterable<string>,
  within: Namespace | undefined,
): Promise<{ items: number; history: number }> {
  const batches: { items: ExportedItem[]; history: ExportedHistory[] }[] = [];
  let n = 0;
  let last: ExportedItem | null = null;
  let header = false;
  for await (const raw of lines) {
    n++;
    if (!raw.trim()) continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new InputError(`line ${n} is not JSON`);
    }
    const parsed = exportLineSchema.safeParse(json);
    if (!parsed.success)
      throw new InputError(`line ${n}: ${z.prettifyError(parsed.error)}`, parsed.error.issues.slice(0, 20));
    const line = parsed.data;
    // The first line that is not blank, not line 1 as counted: blank lines before it skipped
    // the check, and a file of items without its header was taken.
    if (!header && line.type !== 'export')
      throw new InputError(`line ${n} must be the export header ({"type":"export","format":1,...})`);
    if (line.type === 'export') {
      if (header) throw new InputError(`line ${n}: a second export header`);
      header = true;
      continue;
    }
    if (within && !within.every((label, i) => line.namespace[i] === label))
      throw new AuthError(`line ${n}: namespace is outside ${JSON.stringify(within)}`, true);
    if (line.type === 'item') {
      if (!batches.length || (batches.at(-1) as { items: unknown[] }).items.length >= BATCH)
        batches.push({ items: [], history: [] });
      (batches.at(-1) as { items: ExportedItem[] }).items.push(line);
      last = line;
    } else {
      if (!last || JSON.stringify([last.namespace, last.key]) !== JSON.stringify([line.namespace, line.key]))
        throw new InputError(`line ${n}: a history row must follow its item`);
      (batches.at(-1) as { history: ExportedHistory[] }).history.push(line);
    }
  }
  // An empty file is no export file either: the header says what the file is.
  if (!header) throw new InputError('the file has no export header ({"type":"export","format":1,...}): it is empty');
  const done = { items: 0, history: 0 };
  for (const batch of batches) {
    const texts = batch.items.flatMap((i) => i.fields.map((f) => f.text));
    const vectors = embedder && texts.length ? await embedder.embed(texts) : [];
    let next = 0;
    const items = batch.items.map((i) => ({ ...i, vectors: i.fields.map(() => vectors[next++]) }));
    const restored = await memories.restore(items, batch.history);
    if ('taken' in restored) {
      const first = restored.taken[0] as { namespace: Namespace; key: string };
      throw new ConflictError(
        `${JSON.stringify(first.namespace)} / ${JSON.stringify(first.key)} exists here already: import into empty namespaces` +
          ` (${done.items} items imported before it)`,
        { taken: restored.taken, imported: done },
      );
    }
    done.items += restored.restored;
    done.history += restored.history;
  }
  return done;
}
