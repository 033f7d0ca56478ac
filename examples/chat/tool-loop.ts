import type OpenAI from 'openai';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EngramClient, ToolCall, ToolMessage, ToolSession } from '../../src/sdk/index.js';

/** Model calls one request may make: a search, a write, the answer, and room to repair a mistake. */
const MAX_ROUNDS = 5;

export const TOOL_INSTRUCTIONS = `You are a helpful assistant with a long-term memory of this user.
When the user tells you something about themselves worth remembering (interests, preferences, plans),
store it with manage_memory, one fact per memory. When earlier conversations may help, search your
memory with search_memory before you answer.`;

/** A completion as this loop reads it, checked: the model's output is input like any other. */
const completionSchema = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({
          content: z.string().nullable(),
          tool_calls: z
            .array(
              z.object({
                id: z.string().min(1),
                type: z.literal('function'),
                function: z.object({ name: z.string(), arguments: z.string() }),
              }),
            )
            .optional(),
        }),
      }),
    )
    .min(1),
});

export interface ToolLoopDeps {
  engram: EngramClient;
  openai: OpenAI;
  model: string;
  instructionsRole: 'system' | 'developer';
  log: Logger;
}

/**
 * The tool-using mode (`npm run example:chat -- --tools`): the model manages the user's memory
 * itself, with engram's `manage_memory` and `search_memory`. Each round is one completion; the
 * tool calls it makes run through the SDK's tool session (checked, written through the store's
 * writer) and their results go back, until the model answers in text.
 */
export async function answerWithTools(deps: ToolLoopDeps, userId: string, prompt: string): Promise<string> {
  const session = deps.engram.memoryTools({ context: { userId } });
  const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
    { role: deps.instructionsRole, content: TOOL_INSTRUCTIONS },
    { role: 'user', content: prompt },
  ];
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const completion = completionSchema.parse(
      await deps.openai.chat.completions.create({ model: deps.model, messages, tools: session.tools }),
    );
    const message = (completion.choices[0] as z.infer<typeof completionSchema>['choices'][number]).message;
    const calls = message.tool_calls ?? [];
    if (calls.length === 0) {
      if (!message.content?.trim()) throw new Error('the chat model returned no answer');
      return message.content;
    }
    messages.push({ role: 'assistant', content: message.content, tool_calls: calls });
    for (const call of calls) messages.push(await run(session, call, deps.log));
  }
  throw new Error(`the chat model was still calling tools after ${MAX_ROUNDS} rounds`);
}

/** One call; memory out of reach is told to the model, which can still answer without it. */
async function run(session: ToolSession, call: ToolCall, log: Logger): Promise<ToolMessage> {
  try {
    return await session.runToolCall(call);
  } catch (err) {
    const tool = 'function' in call ? call.function.name : call.custom.name;
    log.error({ err, tool }, 'a memory tool failed; the model answers without it');
    return {
      role: 'tool',
      tool_call_id: call.id,
      content: JSON.stringify({ error: 'memory is unavailable right now' }),
    };
  }
}
