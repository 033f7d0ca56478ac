import type { Namespace } from '../core/names.js';
import type { Logger } from './logger.js';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

export const noUsage = (): TokenUsage => ({ promptTokens: 0, completionTokens: 0 });

export function addUsage(into: TokenUsage, more: TokenUsage): void {
  into.promptTokens += more.promptTokens;
  into.completionTokens += more.completionTokens;
}

/** What one model request cost, and on whose behalf. */
export interface UsageRecord extends TokenUsage {
  /** Who spent it: `reflection:<jobId>@<created ms>`, `prompt-optimizer:<runId>`... */
  actor: string;
  threadId?: string;
  /**
   * The namespaces the request served. One extraction call serves all the namespaces of a
   * thread's kinds (sending the turns once is cheaper than once per namespace), so a call is
   * recorded once, with all of them, never split by a made-up ratio.
   */
  namespaces: Namespace[];
  purpose: 'extract' | 'merge' | 'embed-queries' | 'embed-documents' | 'optimize-prompt';
  model: string;
}

/**
 * Where usage goes, per request, including requests of attempts that later fail (their tokens
 * were spent too). Swappable: the default logs; a billing table or a metrics sink plugs in here.
 */
export interface UsageSink {
  record(entry: UsageRecord): void;
}

export function logUsageSink(log: Logger): UsageSink {
  const usageLog = log.child({ component: 'usage' });
  return { record: (entry) => usageLog.info(entry, 'model usage') };
}
