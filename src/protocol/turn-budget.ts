/**
 * How long a process handles incoming frames per event-loop turn, shared by
 * the connections given the same budget. A scheduler gives one to all of its
 * connections: with a budget each, a client's graph parts and two workers'
 * reports read in one turn blocked its loop for three budgets and more.
 *
 * Frames are handled as they are read while the turn's budget lasts. Once it
 * is spent, or while any connection of the budget still holds frames back,
 * a connection holds its frames back (its socket paused), and the held
 * connections are served one frame each in turn, once per turn, for a budget
 * in all: no connection waits behind another's backlog for long.
 */

/** A connection with frames (or messages its handler left for later) held back. */
export interface HeldFrames {
  /** Handles its next held frame; false once it holds none (or closed). */
  handleOne(): boolean;
}

export class TurnBudget {
  /** When this turn's handling began (0: not yet). */
  private start = 0;
  private readonly held: HeldFrames[] = [];
  private serving = false;

  constructor(readonly ms: number) {}

  /** Whether a frame just read may be handled now (else it is held back: see hold). Opens the turn's budget. */
  allows(): boolean {
    if (this.held.length > 0) return false;
    const t = performance.now();
    if (this.start === 0) {
      this.start = t;
      setImmediate(this.endTurn);
    }
    return t - this.start <= this.ms;
  }

  /** This turn's budget is spent (false before anything was handled this turn). */
  spent(): boolean {
    return this.start !== 0 && performance.now() - this.start > this.ms;
  }

  /** `c` holds frames back: it is served in turn with the others, from the end of this turn. */
  hold(c: HeldFrames): void {
    if (this.held.includes(c)) return;
    this.held.push(c);
    if (!this.serving) {
      this.serving = true;
      setImmediate(this.serve);
    }
  }

  private readonly endTurn = (): void => {
    // A turn that ends with connections to serve: they use what is left of its budget (serve resets it).
    if (!this.serving) this.start = 0;
  };

  private readonly serve = (): void => {
    if (this.start === 0) this.start = performance.now();
    while (this.held.length > 0 && !this.spent()) {
      const c = this.held.shift() as HeldFrames;
      // (A handler that stopped at the budget has already asked to be held again.)
      if (c.handleOne() && !this.held.includes(c)) this.held.push(c);
    }
    this.start = 0;
    if (this.held.length > 0) setImmediate(this.serve);
    else this.serving = false;
  };
}
