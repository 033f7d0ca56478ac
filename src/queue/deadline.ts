import { UnavailableError } from '../errors.js';

interface Pending {
  /** The sweep count when the call started: calls are aged in sweeps, not read off a clock. */
  sweep: number;
  reject: (err: Error) => void;
}

/** Sweeps per deadline: a call fails between `ms` and 1.25 x `ms` after it started. */
const SWEEPS = 4;

/**
 * Fails a hot-path Redis call that a stalled (connected but silent) Redis never answers, so that
 * a chat turn gets an error instead of a hang. One timer watches every call in flight: ioredis'
 * `commandTimeout` arms and clears a timer per command, about 8 us per append in a one-off
 * measurement (docs/decisions.md). A call costs no clock read either: the timer counts sweeps.
 */
export class Deadline {
  private readonly pending = new Set<Pending>();
  private timer: NodeJS.Timeout | null = null;
  private sweeps = 0;

  /** `advice` ends the error message: what the caller should do about it. */
  constructor(
    private readonly ms: number,
    private readonly advice: string,
  ) {}

  /** `work`'s outcome, or an UnavailableError('redis') once the deadline passes (the work itself runs on). */
  run<T>(work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { sweep: this.sweeps, reject };
      this.pending.add(entry);
      this.timer ??= setInterval(() => this.sweep(), Math.max(1, this.ms / SWEEPS)).unref();
      work.then(
        (value) => {
          this.pending.delete(entry);
          resolve(value);
        },
        (err: unknown) => {
          this.pending.delete(entry);
          reject(err);
        },
      );
    });
  }

  private sweep() {
    this.sweeps++;
    for (const entry of this.pending) {
      // Started after the SWEEPS-th sweep before this one: not yet `ms` old.
      if (this.sweeps - entry.sweep <= SWEEPS) continue;
      this.pending.delete(entry);
      entry.reject(new UnavailableError('redis', `Redis did not answer within ${this.ms} ms; ${this.advice}`));
    }
    // Idle: stop ticking until the next call (a busy producer keeps one interval, no churn).
    if (this.pending.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
