/** Helpers shared by the benchmark scripts (not part of the product). Latency samples are in ms. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}

export function summarize(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
  return { n: s.length, p50: at(50), p95: at(95), p99: at(99), max: s.at(-1) ?? Number.NaN };
}

export async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const start = performance.now();
  const result = await fn();
  return { ms: performance.now() - start, result };
}

export const ms = (x: number) => `${x < 1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1)} ms`;
export const int = (x: number) => Math.round(x).toLocaleString('en-US');
export const now = () => Number(process.hrtime.bigint()) / 1e6;

export function line(what: string, figures: string) {
  process.stdout.write(`${what.padEnd(44)} ${figures}\n`);
}

/** Columns are every key any row has, in first-seen order; a row without one leaves it blank. */
export function table(rows: Record<string, string | number>[]) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i] as number)).join('  ');
  process.stdout.write(`${row(cols)}\n${row(width.map((w) => '-'.repeat(w)))}\n`);
  for (const r of rows) process.stdout.write(`${row(cols.map((c) => String(r[c] ?? '')))}\n`);
}

/** A positive number from `--name N` on the command line, or the fallback. */
export function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

/** recall@k of `found` against `truth` (both id lists). */
export function recall(found: string[], truth: string[]): number {
  const want = new Set(truth);
  return truth.length === 0 ? 1 : found.filter((f) => want.has(f)).length / truth.length;
}
