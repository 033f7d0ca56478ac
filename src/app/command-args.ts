import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * A one-shot command's arguments, checked in full before it touches anything. Unchecked, a
 * mistyped flag ran the command's default: `store:ann-index -- --dorp` built the index it was
 * asked to drop, `--maintenance-work-mem=2GB` built with 1GB, `migrate -- --help` migrated.
 * An unknown flag, a flag without its value, or a value `schema` refuses throws one error that
 * ends with `usage`. `--help` (`-h`) asks for the usage alone: `help` is then true.
 */
export function commandArgs<S extends z.ZodType>(
  argv: string[],
  options: Options,
  schema: S,
  usage: string,
): { help: true } | { help: false; args: z.output<S> } {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${usage}`, { cause: err });
  }
  const { help, ...values } = parsed.values;
  if (help) return { help: true };
  const checked = schema.safeParse({ ...values, positionals: parsed.positionals });
  if (!checked.success) throw new Error(`${checked.error.issues[0]?.message ?? 'bad arguments'}\n${usage}`);
  return { help: false, args: checked.data };
}
