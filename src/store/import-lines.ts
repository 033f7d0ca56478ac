import { clipText } from '../core/safe-text.js';
import { AuthError, ConflictError, InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { ExportLineReader, type ExportedHistory, type ExportedItem } from './export-format.js';
import type { MemoryDb } from './memory-db.js';
import { partialImportError, type ImportCounts } from './partial-import.js';
import type { Namespace } from './types.js';

/** Items restored per transaction (with their history rows and one embedding call). */
const BATCH = 500;

/** What an import wrote, and the items it left out because their expiry had passed (restore.ts). */
export type ImportResult = ImportCounts & { expired: number };

/**
 * Imports an export file (export-format.ts), line by line: every line is checked first, the
 * file's own rules included (each key once, every item under the header's prefix), so that a
 * bad line anywhere is a 400 naming it and nothing is written; then the items go in batches,
 * each re-embedded by this deployment's model and restored with its versions and history. The
 * file is held whole before the first write anyway (64 MiB at most through the API): checking
 * it all first costs a map of its keys. A key that already exists here is a 409 naming it;
 * batches before it stay, as they do when a later batch fails otherwise, and the error says how
 * many (partial-import.ts). `tenant`: every namespace must start with it (a tenant imports into
 * its own namespaces only), and its history is stamped as the tenant's (tenantHistory).
 */
export async function importLines(
  memories: MemoryDb,
  embedder: Embedder | null,
  lines: AsyncIterable<string> | Iterable<string>,
  tenant: string | undefined,
): Promise<ImportResult> {
  const within: Namespace | undefined = tenant === undefined ? undefined : [tenant];
  const batches: { line: number; items: ExportedItem[]; history: ExportedHistory[] }[] = [];
  const reader = new ExportLineReader();
  for await (const raw of lines as AsyncIterable<unknown>) {
    if (typeof raw !== 'string') throw new InputError(`line ${reader.count + 1} is not a string`);
    const line = reader.line(raw);
    if (!line || line.type === 'export') continue;
    if (within && !within.every((label, i) => line.namespace[i] === label))
      throw new AuthError(`line ${reader.count}: namespace is outside ${JSON.stringify(within)}`, true);
    // The reader saw to it that a history row follows its item: its batch is the last one.
    if (line.type === 'history')
      (batches.at(-1) as { history: ExportedHistory[] }).history.push(
        tenant === undefined ? line : tenantHistory(line, tenant),
      );
    else {
      if (!batches.length || (batches.at(-1) as { items: unknown[] }).items.length >= BATCH)
        batches.push({ line: reader.count, items: [], history: [] });
      (batches.at(-1) as { items: ExportedItem[] }).items.push(line);
    }
  }
  reader.end();
  const done = { items: 0, history: 0, expired: 0 };
  for (const batch of batches) {
    try {
      await restoreBatch(memories, embedder, batch, done);
    } catch (err) {
      throw partialImportError(err, done, batch.line);
    }
  }
  return done;
}

/**
 * A tenant's imported change, recorded as the tenant's: its actor after `api:<tenant>:`, as a
 * tenant's own writes are stamped (api/tenancy.ts), and its thread under `<tenant>/`. A file
 * is the caller's text: kept as written, a row could claim another tenant's job actor
 * (`reflection:<id>@<ms>`), which an operator's undo of that job would then meet (a 409) and the
 * memory browser would offer to undo from this tenant's page.
 */
function tenantHistory(line: ExportedHistory, tenant: string): ExportedHistory {
  const own = `api:${tenant}`;
  const actor = line.actor === own || line.actor.startsWith(`${own}:`) ? line.actor : `${own}:${line.actor}`;
  const thread = line.threadId;
  return {
    ...line,
    actor: clipText(actor, 200),
    threadId: thread === null || thread.startsWith(`${tenant}/`) ? thread : clipText(`${tenant}/${thread}`, 300),
  };
}

/** One batch embedded and restored, its counts added to `done`; a key taken here is a 409. */
async function restoreBatch(
  memories: MemoryDb,
  embedder: Embedder | null,
  batch: { items: ExportedItem[]; history: ExportedHistory[] },
  done: ImportResult,
): Promise<void> {
  const texts = batch.items.flatMap((i) => i.fields.map((f) => f.text));
  const vectors = embedder && texts.length ? await embedder.embed(texts) : [];
  let next = 0;
  const items = batch.items.map((i) => ({ ...i, vectors: i.fields.map(() => vectors[next++]) }));
  const restored = await memories.restore(items, batch.history);
  if ('taken' in restored) {
    const first = restored.taken[0] as { namespace: Namespace; key: string };
    throw new ConflictError(
      `${JSON.stringify(first.namespace)} / ${JSON.stringify(first.key)} exists here already: import into empty namespaces`,
      { taken: restored.taken, imported: { items: done.items, history: done.history } },
    );
  }
  done.items += restored.restored;
  done.history += restored.history;
  done.expired += restored.expired;
}

/**
 * An export file as lines: its text split (a string is iterable too, by character), or the
 * lines it is given; anything else is the caller's mistake, said as one.
 */
export function linesOf(file: unknown): AsyncIterable<string> | Iterable<string> {
  if (typeof file === 'string') return file.split('\n');
  if (file !== null && typeof file === 'object' && (Symbol.asyncIterator in file || Symbol.iterator in file))
    return file as AsyncIterable<string> | Iterable<string>;
  throw new InputError('invalid import: pass an export file: its text, or its lines (an iterable)');
}
