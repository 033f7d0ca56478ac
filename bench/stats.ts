/** Latency samples in ms, summarised the same way for every line of the report. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const start = performance.now();
  const result = await fn();
  return { ms: performance.now() - start, result };
}

export const ms = (x: number) => `${x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;
export const int = (x: number) => Math.round(x).toLocaleString('en-US');

export function line(what: string, figures: string) {
  process.stdout.write(`${what.padEnd(44)} ${figures}\n`);
}

/** recall@k of `found` against `truth` (both id lists). */
export function recall(found: string[], truth: string[]): number {
  const want = new Set(truth);
  return truth.length === 0 ? 1 : found.filter((f) => want.has(f)).length / truth.length;
}
