import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { threadIdSchema } from '../core/names.js';
import { invalidInput } from '../core/invalid-input.js';
import { InputError } from '../errors.js';
import { canonical } from '../memory/tool-calls.js';
import { contextSchema } from '../queue/schemas.js';

/**
 * A session's thread when its caller names none: one per context (`mcp-` and a digest of it), so
 * that sessions of one user share a thread, and two contexts never do (a thread belongs to one
 * context, and its turns would be refused).
 */
export function defaultThreadId(context: Record<string, string>): string {
  return `mcp-${createHash('sha256').update(canonical(context)).digest('hex').slice(0, 16)}`;
}

export const sessionInputSchema = z.strictObject({ context: contextSchema, thread: threadIdSchema.optional() });

/**
 * The stdio server's session, from its command line: `--context key=value` (repeat it for each
 * key, such as `--context userId=u1`) and `--thread <id>`. A stdio process is trusted like the SDK
 * (whoever starts it has the database's credentials), so the context is taken as given.
 */
export function parseStdioArgs(argv: string[]): { context: Record<string, string>; threadId: string } {
  let values: { context?: string[]; thread?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { context: { type: 'string', multiple: true }, thread: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new InputError(`${(err as Error).message} (usage: --context key=value ... [--thread id])`);
  }
  const context: Record<string, string> = {};
  for (const pair of values.context ?? []) {
    const at = pair.indexOf('=');
    if (at < 1) throw new InputError(`--context ${JSON.stringify(pair)} is not key=value`);
    const key = pair.slice(0, at);
    if (Object.hasOwn(context, key)) throw new InputError(`--context ${key} is given twice`);
    context[key] = pair.slice(at + 1);
  }
  const parsed = sessionInputSchema.safeParse({ context, thread: values.thread });
  if (!parsed.success) throw invalidInput('MCP session options', parsed.error);
  return { context: parsed.data.context, threadId: parsed.data.thread ?? defaultThreadId(parsed.data.context) };
}
