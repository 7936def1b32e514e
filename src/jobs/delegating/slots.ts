/**
 * The step-delegating loop's decisions (executor.ts), as a pure machine: which
 * steps take a slot now, which attempts started ahead are given their inputs,
 * and which are stopped. The loop applies what `next()` returns and reports
 * each attempt it let go (`release`); no process, socket or clock in here
 * (the time comes in as an argument), so the decisions are property-tested
 * without processes (test/step-slots.test.ts).
 *
 * A step is started ahead only while every step it needs is running or
 * done (not while one waits to retry), and it holds a slot, so
 * `maxConcurrent` bounds the processes and containers at once; but only as
 * long as no ready step needs it: a step that is ready, or due after a
 * retry, takes the slot of the least urgent attempt started ahead, which is
 * stopped and may be started ahead again later. Before, steps started ahead
 * below a step waiting to retry held every slot its retry needed, and the
 * run never went on (either rule alone prevents that; the property test
 * finds the hang with neither).
 */
import type { ActiveExecution, PlannedStep } from '../plan.ts';

export interface TagLimit {
  readonly key: string;
  readonly value?: string | undefined;
  readonly limit: number;
}

export interface SlotLimits {
  readonly maxConcurrent: number;
  readonly tagConcurrencyLimits: readonly TagLimit[];
  /** Start the process of a step whose upstream steps are running (see stepDelegatingConfig). */
  readonly startAhead: boolean;
}

export type SlotAction =
  /** Start an attempt of the step; `early`: its inputs do not exist yet. `waiting`: steps not started yet (a hint for the handler). */
  | { kind: 'launch'; step: PlannedStep; early: boolean; waiting: number }
  /** The step's attempt started ahead: its inputs exist now. */
  | { kind: 'go'; key: string }
  /**
   * Stop the step's attempt started ahead, unseen. `for`: the ready step that
   * takes its slot; null: the step will not run after all (upstream failed or skipped).
   */
  | { kind: 'stop'; key: string; for: string | null };

interface Holder {
  readonly step: PlannedStep;
  /** Started ahead and not given its inputs yet. */
  early: boolean;
}

export class StepSlots {
  /** Ready steps waiting for a slot, most urgent first. */
  private pending: PlannedStep[] = [];
  /** Steps that may be started ahead when a slot is free. */
  private ahead: PlannedStep[] = [];
  /** Attempts holding a slot, by step key. */
  private readonly holders = new Map<string, Holder>();
  private readonly order: Map<string, number>;

  constructor(
    private readonly active: ActiveExecution,
    private readonly limits: SlotLimits,
  ) {
    this.order = new Map(active.plan.steps.map((s, i) => [s.key, i]));
  }

  /** Attempts holding a slot. */
  get held(): number {
    return this.holders.size;
  }

  /** Ready steps waiting for a slot. */
  get waiting(): number {
    return this.pending.length;
  }

  /** Whether the step's attempt was started ahead and still waits for its inputs. */
  isEarly(key: string): boolean {
    return this.holders.get(key)?.early === true;
  }

  /** What to do now: apply the actions in order. */
  next(now: number): SlotAction[] {
    const out: SlotAction[] = [];
    const { active } = this;
    for (const step of active.ready(now)) {
      const h = this.holders.get(step.key);
      if (h?.early) {
        h.early = false;
        out.push({ kind: 'go', key: step.key });
      } else this.pending.push(step);
    }
    this.pending.sort(this.urgentFirst);
    if (this.limits.startAhead) this.ahead.push(...active.upcoming());
    // Started ahead, but will not run after all: stopped unseen.
    for (const [key, h] of this.holders) {
      if (h.early && active.statusOf(key) !== 'pending') out.push(this.stop(key, null));
    }
    let waiting = -1;
    for (let i = 0; i < this.pending.length; ) {
      const step = this.pending[i] as PlannedStep;
      const yielding = this.slotFor(step);
      if (yielding === null) {
        i++;
        continue;
      }
      for (const key of yielding) out.push(this.stop(key, step.key));
      this.pending.splice(i, 1);
      if (waiting < 0) waiting = this.pending.length + active.stepsWith('pending').length;
      else waiting = Math.max(0, waiting - 1);
      out.push(this.take(step, false, waiting));
    }
    // Then steps whose upstream steps are running, in the slots left, without taking any.
    for (let i = 0; i < this.ahead.length && this.holders.size < this.limits.maxConcurrent; ) {
      const step = this.ahead[i] as PlannedStep;
      if (active.statusOf(step.key) !== 'pending' || this.holders.has(step.key)) {
        this.ahead.splice(i, 1);
        continue;
      }
      if (!this.upstreamUnderway(step) || this.blockingLimit(step) !== null) {
        i++;
        continue;
      }
      this.ahead.splice(i, 1);
      out.push(this.take(step, true, Math.max(0, waiting)));
    }
    return out;
  }

  /** The attempt of `key` is over (it ended, failed, or was stopped by the loop): its slot is free. */
  release(key: string): void {
    this.holders.delete(key);
  }

  private take(step: PlannedStep, early: boolean, waiting: number): SlotAction {
    this.holders.set(step.key, { step, early });
    return { kind: 'launch', step, early, waiting };
  }

  private stop(key: string, forKey: string | null): SlotAction {
    const h = this.holders.get(key);
    this.holders.delete(key);
    // Yielded its slot but may still run: it can be started ahead again later.
    if (h && forKey !== null) this.ahead.push(h.step);
    return { kind: 'stop', key, for: forKey };
  }

  /**
   * Whether the ready step may start now: [] if it fits as things are, the
   * keys of the attempts started ahead that must yield their slots to it, or
   * null if it must wait for a running step to end.
   */
  private slotFor(step: PlannedStep): string[] | null {
    // Held by steps that really run: those slots are not for taking.
    if (this.count((h) => !h.early) >= this.limits.maxConcurrent) return null;
    for (const l of this.limits.tagConcurrencyLimits) {
      if (matches(step, l) && this.count((h) => !h.early && matches(h.step, l)) >= l.limit) return null;
    }
    const yielding: string[] = [];
    const taken = new Set<string>();
    // Per tag limit the step falls under, and then for the slot itself: the least urgent attempt started ahead yields.
    for (let l = this.blockingLimit(step, taken); l !== null; l = this.blockingLimit(step, taken)) {
      const key = this.leastUrgent((h) => h.early && matches(h.step, l as TagLimit), taken) as string;
      taken.add(key);
      yielding.push(key);
    }
    if (this.holders.size - taken.size >= this.limits.maxConcurrent) {
      yielding.push(this.leastUrgent((h) => h.early, taken) as string);
    }
    return yielding;
  }

  /** A tag limit the step falls under that is full (not counting the holders in `except`), or null. */
  private blockingLimit(step: PlannedStep, except: ReadonlySet<string> = new Set()): TagLimit | null {
    for (const l of this.limits.tagConcurrencyLimits) {
      if (matches(step, l) && this.count((h) => matches(h.step, l), except) >= l.limit) return l;
    }
    return null;
  }

  private count(pred: (h: Holder) => boolean, except: ReadonlySet<string> = new Set()): number {
    let n = 0;
    for (const [key, h] of this.holders) if (!except.has(key) && pred(h)) n++;
    return n;
  }

  /** Among the holders matching `pred` (not in `except`), the one whose step would start last. */
  private leastUrgent(pred: (h: Holder) => boolean, except: ReadonlySet<string>): string | null {
    let best: Holder | null = null;
    for (const [key, h] of this.holders) {
      if (except.has(key) || !pred(h)) continue;
      if (best === null || this.urgentFirst(h.step, best.step) > 0) best = h;
    }
    return best?.step.key ?? null;
  }

  /** A step started ahead only while every step it needs is running or done. */
  private upstreamUnderway(step: PlannedStep): boolean {
    return step.upstream.every((u) => {
      const s = this.active.statusOf(u);
      return s === 'running' || s === 'succeeded';
    });
  }

  /** Higher `weft/priority` first, then in plan order. */
  private readonly urgentFirst = (x: PlannedStep, y: PlannedStep): number => y.priority - x.priority || (this.order.get(x.key) ?? 0) - (this.order.get(y.key) ?? 0);
}

function matches(step: PlannedStep, l: TagLimit): boolean {
  const v = step.tags[l.key];
  return v !== undefined && (l.value === undefined || v === l.value);
}
