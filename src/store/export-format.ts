import { z } from 'zod';
import { isoTimeSchema } from '../core/iso-time.js';
import { kindNameSchema, namespaceSchema } from '../core/names.js';
import { JSON_MAX_DEPTH, jsonCheck } from '../core/json-bounds.js';
import { storableText } from '../core/safe-text.js';
import { MAX_ISSUES } from '../core/invalid-input.js';
import { InputError } from '../errors.js';

/**
 * engram's export format: NDJSON, one JSON object a line. A header, then each item with the
 * texts it is indexed by (vectors are not exported: the importing deployment embeds the texts
 * with its own model), then, when asked, each item's history rows, oldest first. Importing a file
 * into an empty deployment restores the items with their versions, times and validity, and
 * their history as it was. One schema per line type: a file is input from outside.
 */
const time = isoTimeSchema;
/** A document: bounded and checked without recursion (a line is input from outside). */
const json = z
  .custom<Record<string, unknown>>()
  .check(jsonCheck({ object: {}, maxDepth: JSON_MAX_DEPTH, text: true, maxChars: 1_000_000 }));
const text = z.string().check(storableText);

export const exportHeaderSchema = z.strictObject({
  type: z.literal('export'),
  format: z.literal(1),
  exportedAt: time,
  // What was exported. A prefix is what every item of the file must be under (an export by
  // prefix writes nothing else); an empty one, as the SDK once exported everything, holds all.
  scope: z
    .custom<Record<string, unknown>>()
    .check(jsonCheck({ object: {}, maxDepth: 8, maxChars: 10_000 }))
    .pipe(z.looseObject({ namespacePrefix: z.array(z.string()).optional() })),
});

export const exportedItemSchema = z.strictObject({
  type: z.literal('item'),
  namespace: namespaceSchema,
  key: text.min(1).max(1_024),
  // A kind as a put names it: any other text would be stored as a kind no put could write.
  kind: kindNameSchema,
  value: json,
  version: z.number().int().min(1),
  createdAt: time,
  updatedAt: time,
  expiresAt: time.nullable(),
  ttlMs: z.number().int().positive().nullable(),
  validFrom: time,
  invalidAt: time.nullable(),
  fields: z.array(z.strictObject({ field: text.min(1).max(512), text: text.max(32_000) })).max(256),
});

export const exportedHistorySchema = z.strictObject({
  type: z.literal('history'),
  namespace: namespaceSchema,
  key: text.min(1).max(1_024),
  // A kind as a put names it: any other text would be stored as a kind no put could write.
  kind: kindNameSchema,
  op: z.enum(['insert', 'update', 'delete', 'expire', 'invalidate']),
  version: z.number().int().min(1),
  before: json.nullable(),
  after: json.nullable(),
  actor: text.min(1).max(200),
  threadId: text.max(300).nullable(),
  at: time,
  // The validity the change left (exports since migration 012; absent: not recorded).
  validFrom: time.optional(),
  invalidAt: time.optional(),
});

export const exportLineSchema = z.discriminatedUnion('type', [
  exportHeaderSchema,
  exportedItemSchema,
  exportedHistorySchema,
]);
export type ExportedItem = z.infer<typeof exportedItemSchema>;
export type ExportedHistory = z.infer<typeof exportedHistorySchema>;
export type ExportLine = z.infer<typeof exportLineSchema>;

/**
 * Reads an export file's lines in order, as the import route and the HTTP client both check
 * them: blank lines skipped, every other line JSON of one of the line types, the header first
 * and once, and the file true to itself (fileRule). `line` returns the parsed line (null for a
 * blank one) or throws an InputError naming the line, counted from 1; `end` refuses a file that
 * had no header.
 */
export class ExportLineReader {
  private header = false;
  private n = 0;
  private prefix: string[] | undefined;
  /** Each item's line by its key: a file holds a key once. The import holds the file anyway. */
  private readonly seen = new Map<string, number>();
  private last: string | null = null;

  /** The lines read so far: the number of the last one. */
  get count(): number {
    return this.n;
  }

  line(raw: string): ExportLine | null {
    const n = ++this.n;
    if (!raw.trim()) return null;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new InputError(`line ${n} is not JSON`);
    }
    const parsed = exportLineSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, MAX_ISSUES);
      throw new InputError(`line ${n}: ${z.prettifyError(new z.ZodError(issues))}`, issues);
    }
    // The first line that is not blank, not line 1 as counted: blank lines before it skipped
    // the check, and a file of items without its header was taken.
    if (!this.header && parsed.data.type !== 'export')
      throw new InputError(`line ${n} must be the export header ({"type":"export","format":1,...})`);
    if (parsed.data.type === 'export' && this.header) throw new InputError(`line ${n}: a second export header`);
    this.header = true;
    const broken = this.fileRule(parsed.data);
    if (broken) throw new InputError(`line ${n}: ${broken}`);
    return parsed.data;
  }

  /**
   * What a line breaks of the rules a file keeps across its lines, as every export writes them:
   * an item under the header's prefix, its key not seen before in the file (the restore would
   * fail on it, or a later batch find it written by an earlier one), a history row after its
   * item. Checked as the lines are read, so that nothing is written of a file that breaks one.
   */
  private fileRule(line: ExportLine): string | null {
    if (line.type === 'export') {
      this.prefix = line.scope.namespacePrefix;
      return null;
    }
    const id = JSON.stringify([line.namespace, line.key]);
    const said = `namespace ${JSON.stringify(line.namespace)} key ${JSON.stringify(line.key)}`;
    if (line.type === 'history') return id === this.last ? null : `a history row must follow its item (${said})`;
    if (this.prefix && !this.prefix.every((label, i) => line.namespace[i] === label))
      return `namespace ${JSON.stringify(line.namespace)} is outside the file's scope.namespacePrefix ${JSON.stringify(this.prefix)}`;
    const before = this.seen.get(id);
    if (before !== undefined) return `${said} appears already at line ${before} (a file holds each key once)`;
    this.seen.set(id, this.n);
    this.last = id;
    return null;
  }

  /** An empty file is no export file either: the header says what the file is. */
  end(): void {
    if (!this.header)
      throw new InputError(
        'the file is empty: an export file starts with its export header ({"type":"export","format":1,...})',
      );
  }
}
