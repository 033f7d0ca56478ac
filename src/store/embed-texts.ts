import { LimitError, ModelOutputError, PermanentError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';

/**
 * What one request may send the embedding model: the texts of a batch go in one call, so a
 * request that could name any number of them would hold the API for as long as the model takes.
 * Each bound is a 413 naming it, checked before the model is called.
 */
export const EMBED_LIMITS = {
  /** OpenAI's own cap on inputs per embeddings request. */
  textsPerRequest: 2_048,
  /**
   * About 8,000 tokens of English, the context of OpenAI's embedding models: a longer text is
   * refused by the model anyway. Denser text (code, CJK) may be refused below it; that refusal is
   * a 413 too, naming the longest text.
   */
  charsPerText: 32_000,
  /** About 250,000 tokens of English, under OpenAI's 300,000 tokens per request. */
  charsPerRequest: 1_000_000,
} as const;

/** A text to embed, and where it came from, as a caller would find it (`value field \`a.b\` of the put of "k"`). */
export interface TextToEmbed {
  text: string;
  where: string;
}

/** A put as a message names it: `the put of "k"` (a long key cut short). */
export const putLabel = (key: string) => `the put of ${JSON.stringify(key.slice(0, 64))}`;

/** Where an indexed field's text came from: a put's value field, or a search's query. */
export function textLabel(op: { op: string; key?: string }, field: string): string {
  if (op.op !== 'put') return `the ${op.op} query`;
  return `${field === '$' ? 'value (`$`)' : `value field \`${field}\``} of ${putLabel(op.key ?? '')}`;
}

/**
 * Vectors for `texts`, in order, within EMBED_LIMITS; the model refusing a text as too long is a
 * LimitError naming the longest one (the model does not say which it refused).
 */
export async function embedTexts(embedder: Embedder, texts: TextToEmbed[], signal?: AbortSignal): Promise<number[][]> {
  const shorten = 'shorten it, index other fields (`index`), or put it with `index: false`';
  if (texts.length > EMBED_LIMITS.textsPerRequest)
    throw new LimitError(
      `this request has ${texts.length} texts to embed; at most ${EMBED_LIMITS.textsPerRequest} texts are embedded per request: split it`,
    );
  let total = 0;
  for (const t of texts) {
    if (t.text.length > EMBED_LIMITS.charsPerText)
      throw new LimitError(
        `${t.where} is ${t.text.length} characters to embed; at most ${EMBED_LIMITS.charsPerText} characters of one text are embedded: ${shorten}`,
      );
    total += t.text.length;
  }
  if (total > EMBED_LIMITS.charsPerRequest)
    throw new LimitError(
      `this request has ${total} characters to embed; at most ${EMBED_LIMITS.charsPerRequest} characters are embedded per request: split it`,
    );
  try {
    return await embedder.embed(
      texts.map((t) => t.text),
      signal,
    );
  } catch (err) {
    if (!refusedAsTooLong(err)) throw err;
    const longest = texts.reduce((a, b) => (b.text.length > a.text.length ? b : a));
    throw new LimitError(
      `${(err as Error).message}; the longest text sent is ${longest.where}, ${longest.text.length} characters: ${shorten}`,
      undefined,
      { cause: err },
    );
  }
}

/**
 * A refusal of what was sent rather than of the setup: OpenAI's `context_length_exceeded` code
 * (retry.ts makes it a `too-long` ModelOutputError), or a 400 or 413 whose message speaks of the
 * model's length limit, as embedding endpoints answer without that code. Any other refusal (a
 * key, a model name, a dimension count) is the deployment's, and stays a 500.
 */
function refusedAsTooLong(err: unknown): boolean {
  if (err instanceof ModelOutputError) return err.reason === 'too-long';
  if (!(err instanceof PermanentError)) return false;
  const status = (err.cause as { status?: unknown } | undefined)?.status;
  return status === 413 || (status === 400 && /context length|too long|maximum.*tokens|token limit/i.test(err.message));
}
