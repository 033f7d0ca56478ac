import type { ChatMessage } from '../llm/chat-model.js';
import { DELETE_TOOL, UPDATE_TOOL, withKindNotes, type AliasedMemory } from './extraction-prompt.js';
import type { MemoryKind } from './kinds.js';

/**
 * The consolidation prompt: groups of memories that lie close in vector space, to be merged
 * where they say the same thing. Its tools are the extraction's update and delete tools
 * (extraction-prompt.ts), so the same checker parses the answer.
 */
const SYSTEM = `You keep the long-term memory of an AI assistant about its user free of duplicates.
Each group below holds memories that may say the same thing, or overlap. For each group:
- memories that say the same thing, or where one adds detail to another: call ${UPDATE_TOOL} on one of
  them with a complete document that keeps every detail of all of them, then ${DELETE_TOOL} on the others;
- memories that only look alike, say different things, or contradict each other: leave them alone
  (there is no conversation here to tell which one is true).
Never delete every memory of a group, never move a detail from one group into another, and never
invent a detail. Make all calls at once, in
parallel. If nothing needs to change, answer "no changes" without calling a tool.`;

export function buildMergeMessages(kinds: MemoryKind[], groups: AliasedMemory[][]): ChatMessage[] {
  const rendered = groups.map((g) => g.map((m) => ({ id: m.alias, kind: m.kind, document: m.document })));
  return [
    { role: 'system', content: withKindNotes(SYSTEM, kinds) },
    { role: 'user', content: `<groups>\n${JSON.stringify(rendered)}\n</groups>` },
  ];
}
