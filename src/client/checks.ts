import { checked } from '../core/invalid-input.js';
import { InputError, LimitError } from '../errors.js';
import { exportLineSchema } from '../store/export-format.js';

/** What `POST /v1/import` takes at most (lifecycle-routes.ts): the route's own body limit. */
const IMPORT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * An import file's text from its text or its lines, every line checked as the API checks it
 * (src/store/import-lines.ts): JSON of one of the export format's line types, the export header
 * first. Blank lines are skipped, as the API skips them. Line numbers count from 1, as the
 * API's do, so a refusal here names the line the API would have named.
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
  let header = false;
  for (const [i, raw] of all.entries()) {
    const n = i + 1;
    if (typeof raw !== 'string') throw new InputError(`invalid import: line ${n} is not a string`);
    if (raw.includes('\n')) throw new InputError(`invalid import: line ${n} holds a newline (one JSON object a line)`);
    if (!raw.trim()) continue;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new InputError(`invalid import: line ${n} is not JSON`);
    }
    const line = checked(exportLineSchema, json, `import: line ${n}`);
    if (!header && line.type !== 'export')
      throw new InputError(`invalid import: line ${n} must be the export header ({"type":"export","format":1,...})`);
    if (line.type === 'export' && header) throw new InputError(`invalid import: line ${n}: a second export header`);
    header = true;
  }
  if (!header) throw new InputError('invalid import: the file is empty (an export file starts with its header line)');
  return text;
}
