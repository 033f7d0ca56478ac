/**
 * A warning said at most once per window, per key, with how many like it were held back since:
 * during an outage every request fails the same way, and a client retrying in a loop turned each
 * failure into a warning with a full stack (hundreds a second), burying the one line that says
 * what happened.
 */
export class ThrottledWarnings {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(private readonly windowMs: number) {}

  /** Whether to log now: the count held back since the last line, or null to stay quiet. */
  take(key: string, now = Date.now()): number | null {
    const seen = this.last.get(key);
    if (seen && now - seen.at < this.windowMs) {
      seen.held++;
      return null;
    }
    this.last.set(key, { at: now, held: 0 });
    return seen?.held ?? 0;
  }
}
