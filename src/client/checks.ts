import { InputError, LimitError } from '../errors.js';
import { ExportLineReader } from '../store/export-format.js';

/** What `POST /v1/import` takes at most (lifecycle-routes.ts): the route's own body limit. */
const IMPORT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * An import file's text from its text or its lines, every line checked as the API checks it
 * (src/store/import-lines.ts): JSON of one of the export format's line types, the export header
 * first, and the file's own rules (each key once, every item under the header's prefix, a
 * history row after its item). Blank lines are skipped, as the API skips them. Line numbers
 * count from 1, as the API's do, so a refusal here names the line the API would have named.
 */
export async function importFile(lines: string | Iterable<string> | AsyncIterable<string>): Promise<string> {
  let all: unknown[] = [];
  if (typeof lines === 'string') all = lines.split('\n');
  else if (lines && (Symbol.asyncIterator in Object(lines) || Symbol.iterator in Object(lines)))
    for await (const line of lines) all.push(line);
  else throw new InputError('invalid import: `lines` must be an export file: its text, or its lines (an iterable)');
  // Its size first: a file the API would refuse whole is not worth reading line by line.
  const text = all.every((line) => typeof line === 'string') ? all.join('\n') : '';
  const bytes = Buffer.byteLength(text);
  if (bytes > IMPORT_MAX_BYTES)
    throw new LimitError(`invalid import: the file is ${bytes} bytes; an import takes at most 64 MiB`);
  const reader = new ExportLineReader();
  try {
    for (const [i, raw] of all.entries()) {
      if (typeof raw !== 'string') throw new InputError(`line ${i + 1} is not a string`);
      if (raw.includes('\n')) throw new InputError(`line ${i + 1} holds a newline (one JSON object a line)`);
      reader.line(raw);
    }
    reader.end();
  } catch (err) {
    // The API's own words, said before anything is sent.
    if (err instanceof InputError) throw new InputError(`invalid import: ${err.message}`, err.details);
    throw err;
  }
  return text;
}
