/**
 * Text from a peer weft does not trust yet (a hello's step key, a refused
 * connection's claims) on its way to a log or a run's events: escaped, so
 * that a newline cannot forge a line of its own, and cut, so that a stranger
 * cannot fill the log; and the lines about refused connections rate limited,
 * so that a flood of them costs a few lines.
 */

/** `text` with control characters, quotes and backslashes escaped (as in a JSON string), at most `max` characters of it. */
export function untrusted(text: unknown, max = 120): string {
  const s = typeof text === 'string' ? text : String(text);
  const escaped = JSON.stringify(s.length > max ? s.slice(0, max) : s).slice(1, -1);
  return s.length > max ? `${escaped}... (${s.length - max} more characters)` : escaped;
}

/**
 * At most `burst` lines per `windowMs`; the lines beyond are counted and
 * said in one line when the window ends.
 */
export class RateLimitedLines {
  private windowStart = -Infinity;
  private inWindow = 0;
  private suppressed = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly emit: (line: string) => void,
    private readonly what: string,
    private readonly burst = 5,
    private readonly windowMs = 10_000,
  ) {}

  line(text: string, now = Date.now()): void {
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow < this.burst) {
      this.inWindow++;
      this.emit(text);
      return;
    }
    this.suppressed++;
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.windowMs - now));
      this.timer.unref();
    }
  }

  /** Says how many lines were left out, if any. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.suppressed === 0) return;
    this.emit(`${this.suppressed} more ${this.what} in ${this.windowMs / 1000} s, not logged one by one`);
    this.suppressed = 0;
  }
}
