import { z } from 'zod';

const url = (protocol: RegExp, what: string) =>
  z.url({ protocol, error: (issue) => `must be a ${what} URL, got ${JSON.stringify(issue.input)}` });
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/**
 * The chat example's environment. Its engram settings (prefix, schema, embedding model and
 * dimensions) must be the running engram service's: recall embeds the query with the same model
 * the memories were embedded with, and reads the service's tables.
 */
export const chatConfigSchema = z.object({
  OPENAI_API_KEY: z.string().min(1, 'required (any non-empty string for servers without auth, such as Ollama)'),
  OPENAI_BASE_URL: url(/^https?$/, 'http(s)').optional(),
  CHAT_MODEL: z.string().min(1).default('gpt-4o-mini'),
  /**
   * The role of the message that carries the memories. `developer` is OpenAI's name for it on
   * newer models; several OpenAI-compatible servers (vLLM, some Ollama models) accept only
   * `system`, which OpenAI still takes as the same thing.
   */
  CHAT_INSTRUCTIONS_ROLE: z.enum(['system', 'developer']).default('system'),
  REDIS_URL: url(/^rediss?$/, 'redis(s)').default('redis://127.0.0.1:6379'),
  DATABASE_URL: url(/^postgres(ql)?$/, 'postgres'),
  ENGRAM_PREFIX: z.string().min(1).default('engram'),
  DATABASE_SCHEMA: z.string().min(1).default('engram'),
  EMBEDDING_MODEL: z.string().min(1).default('text-embedding-3-small'),
  EMBEDDING_DIMENSIONS: int(1, 16_000).default(1536),
  /** OPENAI_BASE_URL and OPENAI_API_KEY when unset, as in the service. */
  EMBEDDING_BASE_URL: url(/^https?$/, 'http(s)').optional(),
  EMBEDDING_API_KEY: z.string().min(1).optional(),
  HOST: z.string().min(1).default('127.0.0.1'),
  CHAT_PORT: int(0, 65_535).default(3001),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type ChatConfig = z.infer<typeof chatConfigSchema>;

/** Parses the environment, or throws one error naming every bad variable. */
export function parseChatConfig(source: Record<string, string | undefined>): ChatConfig {
  // Empty strings are how shells and compose files spell "unset".
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = chatConfigSchema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new Error(`Invalid chat example environment:\n${z.prettifyError(parsed.error)}`);
}
