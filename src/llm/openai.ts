import OpenAI from 'openai';

export interface EndpointSettings {
  baseURL?: string | undefined;
  apiKey: string;
  timeoutMs: number;
  /**
   * The SDK retries 408/409/429/5xx and connection errors with exponential backoff and jitter,
   * honouring Retry-After; we rely on it instead of a second retry loop.
   */
  maxRetries: number;
}

/** One OpenAI-compatible client (OpenAI, Azure, Ollama, vLLM...): only the base URL differs. */
export function createOpenAI(settings: EndpointSettings): OpenAI {
  return new OpenAI({
    apiKey: settings.apiKey,
    baseURL: settings.baseURL ?? null,
    timeout: settings.timeoutMs,
    maxRetries: settings.maxRetries,
  });
}
