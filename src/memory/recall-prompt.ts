import type { RecalledMemory, RecalledProfile } from './recall-schemas.js';

export type { RecalledMemory, RecalledProfile } from './recall-schemas.js';

/** Tokens a text costs in a prompt, estimated as characters / 4 (no tokenizer is loaded). */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4);

/** A document as one line: its text when it is a single string field, else its JSON. */
export function documentText(value: Record<string, unknown>): string {
  const only = Object.values(value);
  return only.length === 1 && typeof only[0] === 'string' ? only[0] : JSON.stringify(value);
}

const escape = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;');

/**
 * The prompt block, a stable format (docs/http-api.md#recall): an XML-like list the model can
 * tell apart from the conversation, profiles first, then memories best first, each on one line.
 * Text is escaped (`&`, `<`) so a memory cannot close its own tag. Empty: nothing was recalled.
 *
 *   <memories>
 *   <profile kind="user_profile">{"name":"Ana","city":"Lisbon"}</profile>
 *   <memory kind="memory" updated="2026-05-01">User loves ramen</memory>
 *   </memories>
 */
export function profileLine(p: RecalledProfile): string {
  return `<profile kind="${p.kind}">${escape(JSON.stringify(p.value))}</profile>`;
}

/** `id`: a tool session's short id (MCP's recall), for the model to name the memory back. */
export function memoryLine(m: RecalledMemory, id?: string): string {
  const named = id === undefined ? '' : ` id="${escape(id).replaceAll('"', '&quot;')}"`;
  return `<memory${named} kind="${m.kind}" updated="${m.updatedAt.toISOString().slice(0, 10)}">${escape(documentText(m.value))}</memory>`;
}

export function promptBlock(lines: string[]): string {
  return lines.length ? `<memories>\n${lines.join('\n')}\n</memories>` : '';
}

/**
 * Profiles, then memories in rank order, as many as fit the budget (the block's own two tag
 * lines counted); a profile that does not fit is left out like a memory, in order. With
 * `idOf`, each memory's line carries its id, counted in the budget.
 */
export function fitBudget(
  profiles: RecalledProfile[],
  memories: RecalledMemory[],
  budget: number | undefined,
  idOf?: (m: RecalledMemory) => string,
): { profiles: RecalledProfile[]; memories: RecalledMemory[]; prompt: string; tokens: number } {
  let used = estimateTokens('<memories>\n\n</memories>');
  const lines: string[] = [];
  const take = <T>(items: T[], line: (x: T) => string): T[] =>
    items.filter((x) => {
      const text = line(x);
      const cost = estimateTokens(text) + 1;
      if (budget !== undefined && used + cost > budget) return false;
      used += cost;
      lines.push(text);
      return true;
    });
  const keptProfiles = take(profiles, profileLine);
  const keptMemories = take(memories, (m) => memoryLine(m, idOf?.(m)));
  const prompt = promptBlock(lines);
  return { profiles: keptProfiles, memories: keptMemories, prompt, tokens: estimateTokens(prompt) };
}
