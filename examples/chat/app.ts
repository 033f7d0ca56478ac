import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import OpenAI from 'openai';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { EngramClient } from '../../src/sdk/index.js';
import { answerWithTools } from './tool-loop.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The one request body: who asks, and what. */
export const chatBodySchema = z.strictObject({
  // It becomes the thread id `chat-<user_id>` and a namespace label, so it keeps to their characters.
  user_id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$/, 'must be 1 to 100 letters, digits and _ . @ -, starting with one'),
  prompt: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    // Recall's query limit; a chat turn longer than that is a document, not a prompt.
    .max(8_000)
    // Postgres text cannot hold NUL, and a lone surrogate is not text a model can read.
    .refine((s) => !s.includes('\u0000') && !LONE_SURROGATE.test(s), {
      message: 'must not contain NUL characters or lone surrogates',
    }),
});

/** What an OpenAI-compatible server answers, checked: it is input from outside like any other. */
const completionSchema = z.object({
  choices: z.array(z.object({ message: z.object({ content: z.string().trim().min(1) }) })).min(1),
});

/** One conversation thread per user: every turn of a user's session reflects on the same thread. */
export const threadIdOf = (userId: string) => `chat-${userId}`;

/** The developer message: the assistant's instructions, with what recall found (or nothing). */
export function instructions(memories: string): string {
  return memories
    ? `You are a helpful assistant. Below is what you remember about this user from earlier conversations; use it where it helps, without reciting it.\n\n${memories}`
    : 'You are a helpful assistant. You do not remember anything about this user yet.';
}

export interface ChatDeps {
  engram: EngramClient;
  openai: OpenAI;
  model: string;
  instructionsRole: 'system' | 'developer';
  log: Logger;
  /**
   * The tool-using mode: instead of a recall before one completion, the model searches and
   * stores memories itself with engram's memory tools (tool-loop.ts). Turns are enqueued as well.
   */
  tools?: boolean;
}

/**
 * POST /chat: recall the user's memories, answer with one chat completion whose developer
 * message carries them, hand engram the turn pair, return the answer. Memory is an aid, not a
 * dependency: when recall or enqueue fails the user still gets an answer, and the log says why.
 */
export function buildChatApp(deps: ChatDeps): FastifyInstance {
  const { engram, openai, log } = deps;
  // A chat body is two short strings; a slow sender gets 10 s to send them.
  const logger: FastifyBaseLogger = log;
  const app = Fastify({ loggerInstance: logger, bodyLimit: 64 * 1024, requestTimeout: 10_000 });

  app.post('/chat', async (req, reply) => {
    const parsed = chatBodySchema.safeParse(req.body);
    if (!parsed.success) return reply.code(400).send({ error: `invalid body: ${z.prettifyError(parsed.error)}` });
    const { user_id: userId, prompt } = parsed.data;
    const context = { userId };
    const asked = new Date().toISOString();

    let answer: string;
    if (deps.tools) {
      try {
        answer = await answerWithTools(deps, userId, prompt);
      } catch (err) {
        req.log.error({ err }, 'the chat completion failed');
        return reply.code(502).send({ error: `the chat model failed: ${(err as Error).message}` });
      }
    } else {
      const answered = await answerOnce(req, reply, userId, prompt);
      if (answered === null) return reply;
      answer = answered;
    }

    // Awaited (one Redis round trip) so that, once the client has its answer, the turn is in
    // engram's buffer; engram forms the memories after the thread has been quiet for DEBOUNCE_MS.
    await engram
      .enqueue({
        threadId: threadIdOf(userId),
        context,
        messages: [
          { role: 'user', content: prompt, createdAt: asked },
          // engram's limit for one turn; a longer answer is remembered by its start.
          { role: 'assistant', content: answer.slice(0, 32_000), createdAt: new Date().toISOString() },
        ],
      })
      .catch((err: unknown) => req.log.error({ err, userId }, 'enqueue failed; this turn will not be remembered'));

    return { answer };
  });

  /** Recall, then one completion that carries the memories; null once it has answered an error. */
  async function answerOnce(
    req: FastifyRequest,
    reply: FastifyReply,
    userId: string,
    prompt: string,
  ): Promise<string | null> {
    const context = { userId };
    const memories = await engram.recall({ context, query: prompt, limit: 10, tokenBudget: 1_000 }).then(
      (r) => r.prompt,
      (err: unknown) => {
        req.log.error({ err, userId }, 'recall failed; answering without memories');
        return '';
      },
    );

    try {
      const completion = await openai.chat.completions.create({
        model: deps.model,
        messages: [
          { role: deps.instructionsRole, content: instructions(memories) },
          { role: 'user', content: prompt },
        ],
      });
      const checked = completionSchema.safeParse(completion);
      if (!checked.success) {
        req.log.error({ issues: checked.error.issues }, 'the chat model returned no answer');
        await reply.code(502).send({ error: 'the chat model returned no answer' });
        return null;
      }
      return (checked.data.choices[0] as { message: { content: string } }).message.content;
    } catch (err) {
      req.log.error({ err }, 'the chat completion failed');
      await reply.code(502).send({ error: `the chat model failed: ${(err as Error).message}` });
      return null;
    }
  }

  return app;
}
