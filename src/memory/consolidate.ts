import type { Logger } from '../log/logger.js';
import type { MemoryStore } from '../store/memory-store.js';

export interface ConsolidationOutcome {
  expired: number;
}

/**
 * One consolidation pass. For now it expires memories past their TTL (with history rows);
 * merging near-duplicates and refreshing profiles use the same transactional apply later.
 */
export async function consolidate(store: MemoryStore, actor: string, log: Logger): Promise<ConsolidationOutcome> {
  let expired = 0;
  for (;;) {
    const swept = await store.sweepExpired(actor);
    expired += swept;
    if (swept === 0) break;
  }
  log.info({ expired }, 'consolidation done');
  return { expired };
}
