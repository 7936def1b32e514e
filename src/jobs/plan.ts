/**
 * The execution plan of a run (its steps and what each needs) and
 * ActiveExecution, the bookkeeping every executor shares: which steps may run
 * now, which are skipped, which cannot run because something upstream failed,
 * and when a step up for retry may run again. It is a pure state machine:
 * events in, steps out, the clock passed in.
 */
import { event, type RunEvent } from './events.ts';
import type { InputSource, JobSpec, StepNode } from './definitions.ts';
import { DefinitionError } from './errors.ts';

/** Op tag ordering ready steps in every executor: a number, higher first (default 0), like `dagster/priority`. */
export const PRIORITY_TAG = 'weft/priority';

export interface PlannedStep {
  readonly key: string;
  readonly node: StepNode;
  /** Steps whose outputs this step takes (each once). */
  readonly upstream: readonly string[];
  /** The op's config, parsed with its schema. */
  readonly config: unknown;
  readonly tags: Readonly<Record<string, string>>;
  /** From the op tag `weft/priority`: among steps ready together, higher ones start first. */
  readonly priority: number;
}

export interface ExecutionPlan {
  readonly runId: string;
  readonly jobName: string;
  /** In an order where every step comes after its upstream steps. */
  readonly steps: readonly PlannedStep[];
  /** Outputs (`step\u0000output`) of steps outside the plan that its steps take: loaded from earlier runs. */
  readonly external: ReadonlySet<string>;
  step(key: string): PlannedStep;
}

/**
 * The plan of a run: every step of the job, or (a re-execution) only
 * `subset.stepKeys`, whose inputs from steps left out are `subset.loaded`.
 */
export function buildPlan(runId: string, job: JobSpec, opConfig: Map<string, unknown>, subset?: { stepKeys: readonly string[]; loaded: readonly { stepKey: string; output: string }[] }): ExecutionPlan {
  const chosen = subset ? new Set(subset.stepKeys) : null;
  if (chosen) for (const k of chosen) if (!job.step(k)) throw new DefinitionError(`job ${job.name} has no step ${k}`);
  const nodes = chosen ? job.steps.filter((n) => chosen.has(n.key)) : job.steps;
  // Inputs from steps left out that were not loaded were never produced: the steps taking them are skipped.
  const external = new Set((subset?.loaded ?? []).map((l) => `${l.stepKey}\u0000${l.output}`));
  const steps: PlannedStep[] = nodes.map((node) => ({
    key: node.key,
    node,
    upstream: [...new Set(node.inputs.filter((i): i is Extract<InputSource, { kind: 'step' }> => i.kind === 'step' && (!chosen || chosen.has(i.stepKey))).map((i) => i.stepKey))],
    config: opConfig.get(node.op.name),
    tags: node.op.tags,
    priority: priorityOf(node),
  }));
  const byKey = new Map(steps.map((s) => [s.key, s]));
  return {
    runId,
    jobName: job.name,
    steps,
    external,
    step(key: string): PlannedStep {
      const s = byKey.get(key);
      if (!s) throw new Error(`no step ${key} in job ${job.name}`);
      return s;
    },
  };
}

function priorityOf(node: StepNode): number {
  const tag = node.op.tags[PRIORITY_TAG];
  if (tag === undefined) return 0;
  const n = Number(tag);
  if (tag.trim() === '' || !Number.isFinite(n)) throw new DefinitionError(`op ${node.op.name}: tag ${PRIORITY_TAG} must be a number (got ${JSON.stringify(tag)})`);
  return n;
}

/** Steps by priority, higher first; steps of equal priority keep their order. */
export function byPriority(steps: PlannedStep[]): PlannedStep[] {
  return steps.some((s) => s.priority !== 0) ? steps.sort((a, b) => b.priority - a.priority) : steps;
}

export type StepStatus = 'pending' | 'running' | 'retry-wait' | 'succeeded' | 'failed' | 'skipped' | 'not-run';

/**
 * Per step: how many upstream steps have not ended. A step is looked at once,
 * when that count reaches zero, so a run costs O(steps + edges) in all.
 */
export class ActiveExecution {
  private readonly status = new Map<string, StepStatus>();
  private readonly produced: Set<string>;
  private readonly attempts = new Map<string, number>();
  private readonly retryAt = new Map<string, number>();
  private readonly downstream = new Map<string, PlannedStep[]>();
  private readonly waitingOn = new Map<string, number>();
  private readyQ: PlannedStep[] = [];
  private upcomingQ: PlannedStep[] = [];
  private readonly upcomingSeen = new Set<string>();
  private events: RunEvent[] = [];
  private unfinished: number;

  constructor(readonly plan: ExecutionPlan) {
    this.produced = new Set(plan.external);
    const first: PlannedStep[] = [];
    for (const s of plan.steps) {
      this.status.set(s.key, 'pending');
      this.waitingOn.set(s.key, s.upstream.length);
      if (s.upstream.length === 0) first.push(s);
      for (const u of s.upstream) {
        const list = this.downstream.get(u);
        if (list) list.push(s);
        else this.downstream.set(u, [s]);
      }
    }
    this.unfinished = plan.steps.length;
    // Steps that wait on nothing: ready, or (an input of a re-execution that no earlier run produced) skipped.
    for (const s of first) this.decide(s);
  }

  /** Steps that may start now (each handed out once per attempt), by priority, then in plan order. */
  ready(now = Date.now()): PlannedStep[] {
    const out: PlannedStep[] = [];
    for (const [key, at] of this.retryAt) {
      if (at <= now) {
        this.retryAt.delete(key);
        this.status.set(key, 'running');
        out.push(this.plan.step(key));
      }
    }
    const q = this.readyQ;
    this.readyQ = [];
    for (const s of q) {
      this.status.set(s.key, 'running');
      out.push(s);
    }
    for (const s of out) this.noteRunning(s);
    return byPriority(out);
  }

  /**
   * Steps not ready yet whose upstream steps are all running or succeeded,
   * each handed out once: an executor whose steps take long to start (a
   * container) may start them ahead and give them their inputs once they
   * exist. A step handed out here may still be skipped or not run.
   */
  upcoming(): PlannedStep[] {
    const q = this.upcomingQ;
    this.upcomingQ = [];
    return byPriority(q.filter((s) => this.status.get(s.key) === 'pending'));
  }

  /** Where a step stands: pending, running, retry-wait, succeeded, failed, skipped or not-run. */
  statusOf(key: string): StepStatus | undefined {
    return this.status.get(key);
  }

  private noteRunning(s: PlannedStep): void {
    for (const d of this.downstream.get(s.key) ?? []) {
      if (this.upcomingSeen.has(d.key) || this.status.get(d.key) !== 'pending') continue;
      if (d.upstream.every((u) => this.status.get(u) === 'running' || this.status.get(u) === 'succeeded')) {
        this.upcomingSeen.add(d.key);
        this.upcomingQ.push(d);
      }
    }
  }

  /** Events the bookkeeping produced (STEP_SKIPPED), to yield with the executor's own. */
  drainEvents(): RunEvent[] {
    const out = this.events;
    this.events = [];
    return out;
  }

  /** The attempt number for a step handed out by `ready` (0 = first). */
  attempt(key: string): number {
    return this.attempts.get(key) ?? 0;
  }

  /** Takes an event of a step into account. */
  handle(ev: RunEvent, now = Date.now()): void {
    const key = ev.stepKey;
    if (key === null) return;
    const st = this.status.get(key);
    if (st === undefined) return;
    switch (ev.type) {
      case 'STEP_OUTPUT':
        this.produced.add(`${key}\u0000${ev.output}`);
        break;
      case 'STEP_SUCCESS':
        this.finish(key, 'succeeded');
        break;
      case 'STEP_FAILURE':
        this.finish(key, 'failed');
        break;
      case 'STEP_SKIPPED':
        this.finish(key, 'skipped');
        break;
      case 'STEP_UP_FOR_RETRY':
        this.status.set(key, 'retry-wait');
        this.attempts.set(key, (ev.attempt ?? this.attempt(key)) + 1);
        this.retryAt.set(key, now + Math.max(0, ev.retryInSeconds ?? 0) * 1000);
        break;
    }
  }

  /** Milliseconds until a step waiting to retry may run, or null if none waits. */
  nextRetryIn(now = Date.now()): number | null {
    let min: number | null = null;
    for (const at of this.retryAt.values()) min = min === null ? at - now : Math.min(min, at - now);
    return min === null ? null : Math.max(0, min);
  }

  /** No step is running, waiting or able to run. */
  get isComplete(): boolean {
    return this.unfinished === 0;
  }

  /** Ends every step not finished yet as not run (for a cancelled run). */
  abandon(): void {
    for (const [k, s] of this.status) {
      if (s === 'pending' || s === 'retry-wait') {
        this.status.set(k, 'not-run');
        this.unfinished--;
      }
    }
    this.retryAt.clear();
    this.readyQ = [];
  }

  stepsWith(status: StepStatus): string[] {
    return [...this.status].filter(([, s]) => s === status).map(([k]) => k);
  }

  /** A step ended: its downstream steps may now be decided. */
  private finish(key: string, s: StepStatus): void {
    const before = this.status.get(key);
    if (before === 'succeeded' || before === 'failed' || before === 'skipped' || before === 'not-run') return;
    this.status.set(key, s);
    this.retryAt.delete(key);
    this.unfinished--;
    for (const d of this.downstream.get(key) ?? []) {
      const left = (this.waitingOn.get(d.key) ?? 1) - 1;
      this.waitingOn.set(d.key, left);
      if (left === 0 && this.status.get(d.key) === 'pending') this.decide(d);
    }
  }

  /** All upstream steps ended: run it, skip it, or (after a failure) never run it. */
  private decide(s: PlannedStep): void {
    let skip = false;
    for (const u of s.upstream) {
      const st = this.status.get(u);
      if (st === 'failed' || st === 'not-run') return this.finish(s.key, 'not-run');
      if (st === 'skipped') skip = true;
    }
    const missing = s.node.inputs.find((i) => i.kind === 'step' && !this.produced.has(`${i.stepKey}\u0000${i.output}`));
    if (skip || missing) {
      const why = missing && missing.kind === 'step' ? `output ${missing.output} of step ${missing.stepKey} was not produced` : 'an upstream step was skipped';
      this.events.push(event('STEP_SKIPPED', this.plan.runId, s.key, `step ${s.key} skipped: ${why}`));
      return this.finish(s.key, 'skipped');
    }
    this.readyQ.push(s);
  }
}
