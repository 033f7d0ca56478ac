import OpenAI from 'openai';

export interface EndpointSettings {
  baseURL?: string | undefined;
  apiKey: string;
  timeoutMs: number;
}

/** One OpenAI-compatible client (OpenAI, Azure, Ollama, vLLM...): only the base URL differs. */
export function createOpenAI(settings: EndpointSettings): OpenAI {
  return new OpenAI({
    apiKey: settings.apiKey,
    baseURL: settings.baseURL ?? null,
    timeout: settings.timeoutMs,
    // Retries are engram's (llm/retry.ts): capped Retry-After waits, abortable backoff, and a
    // log line per retry. The SDK's own loop would retry each of those attempts again.
    maxRetries: 0,
  });
}
