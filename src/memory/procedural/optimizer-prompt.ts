import { z } from 'zod';
import { storableText } from '../../core/safe-text.js';
import type { ChatMessage, ChatTool } from '../../llm/chat-model.js';

/**
 * The prompt optimizer's instructions and its one tool, side by side (LangMem's metaprompt
 * optimizer, in one call): read the current prompt and the feedback on conversations it
 * produced, explain what to change, and propose the whole improved prompt.
 */
export const PROPOSE_TOOL = 'propose_prompt';

export const sessionSchema = z.strictObject({
  messages: z
    .array(z.strictObject({ role: z.enum(['user', 'assistant', 'system', 'tool']), content: z.string().max(32_000) }))
    .min(1)
    .max(200),
  /** What went well or wrong: a score, a comment, a corrected answer... any JSON. */
  feedback: z.unknown().optional(),
});
export type Session = z.infer<typeof sessionSchema>;

/** Both strings are stored as they are: NUL or a lone surrogate would fail the commit, not a repair round. */
export const proposalSchema = z.strictObject({
  analysis: z
    .string()
    .min(1)
    .max(4_000)
    .check(storableText)
    .describe('What the feedback shows and what the new prompt changes, briefly'),
  prompt: z
    .string()
    .min(1)
    .max(20_000)
    .check(storableText)
    .describe('The complete improved prompt; the current one unchanged if it needs no change'),
});
export type Proposal = z.infer<typeof proposalSchema>;

const SYSTEM = `You improve the system prompt of an AI assistant.
You get the current prompt and conversations the assistant had with it, each with the user's
feedback. Find what the feedback asks for that the prompt does not yet say, and rewrite the
prompt so the assistant does it next time: keep what works, change what the feedback shows is
wrong, add only rules that the conversations support, and keep the prompt concise.
Keep every template placeholder in braces, such as {user_name}, exactly as it is.
If nothing needs to change, propose the current prompt unchanged.
Answer by calling ${PROPOSE_TOOL} once.`;

export function optimizerTool(): ChatTool {
  const { $schema: _ignored, ...parameters } = z.toJSONSchema(proposalSchema, { target: 'draft-7' }) as Record<
    string,
    unknown
  >;
  return {
    type: 'function',
    function: { name: PROPOSE_TOOL, description: 'Propose the improved prompt.', parameters },
  };
}

export function optimizerMessages(current: string, sessions: Session[]): ChatMessage[] {
  return [
    { role: 'system', content: SYSTEM },
    {
      role: 'user',
      content: `<current_prompt>\n${current}\n</current_prompt>\n\n<sessions>\n${JSON.stringify(sessions)}\n</sessions>`,
    },
  ];
}

/** Placeholders such as {user_name}: a rewrite that drops one would break the app's templating. */
export function placeholders(prompt: string): string[] {
  return [...new Set([...prompt.matchAll(/\{[A-Za-z_][A-Za-z0-9_]*\}/g)].map((m) => m[0]))];
}
