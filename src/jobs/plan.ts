/**
 * The execution plan of a run (its steps and what each needs) and
 * ActiveExecution, the bookkeeping every executor shares: which steps may run
 * now, which are skipped, which cannot run because something upstream failed,
 * and when a step up for retry may run again. It is a pure state machine:
 * events in, steps out, the clock passed in.
 */
import { event, type RunEvent } from './events.ts';
import type { InputSource, JobSpec, StepNode } from './definitions.ts';
import { copyKey, isCopy, itemOutput, splitCopyKey, splitItemOutput } from './dynamic.ts';
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
  /** In an order where every step comes after its upstream steps. Mapped steps are not among them: their copies are made as items are emitted. */
  readonly steps: readonly PlannedStep[];
  /** Outputs of steps outside the plan that its steps take: loaded from earlier runs. */
  readonly external: readonly { stepKey: string; output: string }[];
  /** Mapped steps (templates), by the dynamic output they are mapped over (`step\u0000output`), in job order. */
  readonly mappedOver: ReadonlyMap<string, readonly PlannedStep[]>;
  /** How many maps deep each mapped step is (1: mapped over a step that is not). */
  readonly depth: ReadonlyMap<string, number>;
  /** A step of the plan, a copy of a mapped step made so far, or (in a step's own process) the mapped step a copy's key names. */
  step(key: string): PlannedStep;
  /** Adds a copy of a mapped step, or a step whose collected inputs are now known (ActiveExecution). */
  put(step: PlannedStep): void;
  /** The copies of mapped steps made so far, in the order they were made. */
  copies(): readonly PlannedStep[];
  /**
   * A re-execution: the copies of mapped steps it runs again, and the items
   * of steps it does not run, as their run emitted them (in order), from
   * which those copies are made.
   */
  readonly rerun?: { readonly copies: ReadonlySet<string>; readonly items: readonly ReplayedItems[] };
}

/** The mapping keys a step's dynamic output emitted in an earlier run, in order. */
export interface ReplayedItems {
  readonly stepKey: string;
  readonly output: string;
  readonly keys: readonly string[];
}

/**
 * The plan of a run: every step of the job, or (a re-execution) only
 * `subset.stepKeys`, whose inputs from steps left out are `subset.loaded`.
 */
export function buildPlan(runId: string, job: JobSpec, opConfig: Map<string, unknown>, subset?: { stepKeys: readonly string[]; loaded: readonly { stepKey: string; output: string }[]; items?: readonly ReplayedItems[] }): ExecutionPlan {
  const chosen = subset ? new Set(subset.stepKeys) : null;
  if (chosen) for (const k of chosen) if (!job.step(splitCopyKey(k).template)) throw new DefinitionError(`job ${job.name} has no step ${k}`);
  // Mapped steps are templates whatever the subset: a re-execution makes the copies it runs again from them.
  const nodes = chosen ? job.steps.filter((n) => chosen.has(n.key) || n.mapped) : job.steps;
  // Inputs from steps left out that were not loaded were never produced: the steps taking them are skipped.
  const external = (subset?.loaded ?? []).map((l) => ({ stepKey: l.stepKey, output: l.output }));
  const planned = (node: StepNode, upstream: string[]): PlannedStep => ({ key: node.key, node, upstream, config: opConfig.get(node.op.name), tags: node.op.tags, priority: priorityOf(node) });
  const depth = new Map<string, number>();
  const mappedOver = new Map<string, PlannedStep[]>();
  const steps: PlannedStep[] = [];
  for (const node of nodes) {
    const upstream = new Set<string>();
    for (const i of node.inputs) {
      if (i.kind === 'step' && (!chosen || chosen.has(i.stepKey)) && !depth.has(i.stepKey)) upstream.add(i.stepKey);
      // Collecting waits for the step whose items were mapped (then for each copy: ActiveExecution).
      if (i.kind === 'collect') {
        const from = i.items ? i.stepKey : job.step(i.stepKey)?.mapped?.stepKey;
        if (from !== undefined && !depth.has(from) && (!chosen || chosen.has(from))) upstream.add(from);
      }
    }
    const p = planned(node, [...upstream]);
    if (!node.mapped) {
      steps.push(p);
      continue;
    }
    depth.set(node.key, (depth.get(node.mapped.stepKey) ?? 0) + 1);
    const at = `${node.mapped.stepKey}\u0000${node.mapped.output}`;
    const list = mappedOver.get(at);
    if (list) list.push(p);
    else mappedOver.set(at, [p]);
  }
  const byKey = new Map(steps.map((s) => [s.key, s]));
  const templates = new Map([...mappedOver.values()].flat().map((s) => [s.key, s]));
  const made: PlannedStep[] = [];
  return {
    runId,
    jobName: job.name,
    steps,
    external,
    mappedOver,
    depth,
    step(key: string): PlannedStep {
      const s = byKey.get(key);
      if (s) return s;
      // A copy not made here (a step process runs it): its mapped step, under the copy's key.
      const t = templates.get(splitCopyKey(key).template);
      if (!t) throw new Error(`no step ${key} in job ${job.name}`);
      return t.key === key ? t : { ...t, key, node: { ...t.node, key } };
    },
    put(step: PlannedStep): void {
      if (isCopy(step.key) && !byKey.has(step.key)) made.push(step);
      byKey.set(step.key, step);
    },
    copies: () => made,
    ...(chosen ? { rerun: { copies: new Set([...chosen].filter(isCopy)), items: subset?.items ?? [] } } : {}),
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
 * The outputs produced, by step: a step's one output as itself, several in a
 * Set. Checking one makes no `step + output` key string, and a step that
 * made one output (nearly all: every mapped copy) costs no Set.
 */
class Outputs {
  private readonly byStep = new Map<string, string | Set<string>>();

  add(step: string, output: string): void {
    const had = this.byStep.get(step);
    if (had === undefined) this.byStep.set(step, output);
    else if (typeof had === 'string') {
      if (had !== output) this.byStep.set(step, new Set([had, output]));
    } else had.add(output);
  }

  has(step: string, output: string): boolean {
    const had = this.byStep.get(step);
    return had === output || (typeof had === 'object' && had.has(output));
  }
}

/** A dynamic output of a step, as ActiveExecution follows it. */
interface EmittedOutput {
  readonly items: Set<string>;
  /** The steps mapped over it (undefined: none). */
  readonly mapped: readonly PlannedStep[] | undefined;
  /** The mapping keys of the step that emits it (a copy inside a map has some). */
  readonly outer: readonly string[];
  /** The copies made from the items of that step (all its outputs). */
  readonly copies: PlannedStep[];
}

/**
 * Per step: how many upstream steps have not ended. A step is looked at once,
 * when that count reaches zero, so a run costs O(steps + edges) in all.
 */
export class ActiveExecution {
  private readonly status = new Map<string, StepStatus>();
  private readonly produced = new Outputs();
  private readonly attempts = new Map<string, number>();
  private readonly retryAt = new Map<string, number>();
  private readonly downstream = new Map<string, PlannedStep[]>();
  private readonly waitingOn = new Map<string, number>();
  private readyQ: PlannedStep[] = [];
  private upcomingQ: PlannedStep[] = [];
  private readonly upcomingSeen = new Set<string>();
  /**
   * Whether a collector may be handed out before the copies it collects
   * end (see takeEarlyCollectors): only where no step can be skipped, so
   * every copy that succeeds has the output collected. A step is skipped
   * when an output it takes was not produced: an optional output, or (a
   * re-execution) one neither run nor loaded.
   */
  private readonly speculates: boolean;
  private earlyQ: PlannedStep[] = [];
  private events: RunEvent[] = [];
  private unfinished: number;
  /**
   * Per dynamic output of a step (`step\u0000output`): the mapping keys
   * emitted so far, in order (a Set keeps it), with what each new item
   * needs, looked up once per output rather than once per item.
   */
  private readonly emitted = new Map<string, EmittedOutput>();
  /** Per step with dynamic outputs: the copies made from its items (stopped if it fails), and the steps collecting them. */
  private readonly copiesOf = new Map<string, PlannedStep[]>();
  private readonly collectorsOf = new Map<string, PlannedStep[]>();

  constructor(readonly plan: ExecutionPlan) {
    for (const e of plan.external) this.produced.add(e.stepKey, e.output);
    const ops = [...plan.steps, ...[...plan.mappedOver.values()].flat()].map((st) => st.node.op);
    this.speculates = plan.rerun === undefined && !ops.some((op) => Object.values(op.outs).some((o) => o.optional === true));
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
    for (const s of plan.steps) this.noteCollector(s, []);
    // A re-execution: the items of steps not run again, as their run emitted them; the copies it runs are made from them.
    for (const r of plan.rerun?.items ?? []) {
      for (const k of r.keys) this.itemEmitted(r.stepKey, r.output, k);
      if (!this.status.has(r.stepKey)) this.sourceEnded(r.stepKey, 'succeeded');
    }
    // Steps that wait on nothing: ready, or (an input of a re-execution that no earlier run produced) skipped.
    for (const s of first) if (this.waitingOn.get(s.key) === 0 && this.status.get(s.key) === 'pending') this.decide(s);
  }

  /** A step that collects mapped copies: known to the step whose items they were made from (keys: its own mapping keys). */
  private noteCollector(s: PlannedStep, keys: readonly string[]): void {
    for (const i of s.node.inputs) {
      if (i.kind !== 'collect') continue;
      const { from } = this.collecting(i, keys);
      const list = this.collectorsOf.get(from);
      if (list) list.push(s);
      else this.collectorsOf.set(from, [s]);
    }
  }

  /**
   * What a collect input of a step with mapping keys `keys` takes: the
   * items of dynamic output `output` of step `from`, and for each item key
   * the output collected (the item itself, or a mapped copy's output).
   */
  private collecting(i: Extract<InputSource, { kind: 'collect' }>, keys: readonly string[]): { from: string; output: string; ref: (k: string) => { stepKey: string; output: string }; copies: boolean } {
    if (i.items) {
      const from = copyKey(i.stepKey, keys);
      return { from, output: i.output, ref: (k) => ({ stepKey: from, output: itemOutput(i.output, k) }), copies: false };
    }
    const over = this.template(i.stepKey).node.mapped as { stepKey: string; output: string };
    return { from: copyKey(over.stepKey, keys), output: over.output, ref: (k) => ({ stepKey: copyKey(i.stepKey, [...keys, k]), output: i.output }), copies: true };
  }

  private template(key: string): PlannedStep {
    return this.plan.step(key);
  }

  /**
   * An item was emitted (output `out[k]` of step `source`): a copy of each
   * step mapped over `out` is made, and may start at once.
   */
  private itemEmitted(source: string, output: string, mappingKey: string): void {
    const at = `${source}\u0000${output}`;
    let out = this.emitted.get(at);
    if (out === undefined) {
      const { template, keys: outer } = splitCopyKey(source);
      let copies = this.copiesOf.get(source);
      if (!copies) this.copiesOf.set(source, (copies = []));
      out = { items: new Set(), mapped: this.plan.mappedOver.get(`${template}\u0000${output}`), outer, copies };
      this.emitted.set(at, out);
    }
    // Emitted again by a later attempt: its copies exist already.
    if (out.items.has(mappingKey)) return;
    out.items.add(mappingKey);
    const { mapped, outer, copies } = out;
    if (!mapped) return;
    const keys = [...outer, mappingKey];
    // A re-execution makes, from a step it does not run, only the copies it runs again.
    const replayed = this.plan.rerun !== undefined && !this.status.has(source);
    for (const t of mapped) {
      const key = copyKey(t.key, keys);
      if (replayed && !this.plan.rerun?.copies.has(key)) continue;
      const upstream = new Set<string>();
      const inputs = t.node.inputs.map((i): InputSource => {
        if (i.kind === 'mapped') return { kind: 'step', stepKey: source, output: `${output}[${mappingKey}]` };
        if (i.kind !== 'step') {
          if (i.kind === 'collect') upstream.add(this.collecting(i, keys).from);
          return i;
        }
        const stepKey = copyKey(i.stepKey, keys.slice(0, this.plan.depth.get(i.stepKey) ?? 0));
        upstream.add(stepKey);
        return { ...i, stepKey };
      });
      const copy: PlannedStep = { ...t, key, node: { key, op: t.node.op, inputs }, upstream: [...upstream] };
      this.plan.put(copy);
      copies.push(copy);
      this.noteCollector(copy, keys);
      this.status.set(key, 'pending');
      this.unfinished++;
      let waiting = 0;
      for (const u of copy.upstream) {
        const st = this.status.get(u);
        // Ended, or not in this run (a re-execution loads its outputs).
        if (st === undefined || st === 'succeeded' || st === 'failed' || st === 'skipped' || st === 'not-run') continue;
        waiting++;
        this.addDownstream(u, copy);
      }
      this.waitingOn.set(key, waiting);
      if (waiting === 0) this.decide(copy);
    }
  }

  private addDownstream(from: string, to: PlannedStep): void {
    const list = this.downstream.get(from);
    if (list) list.push(to);
    else this.downstream.set(from, [to]);
  }

  /** A step with dynamic outputs ended. Succeeded: its collectors also wait for every copy made from its items. Failed: copies not started never will be. */
  private sourceEnded(key: string, s: StepStatus): void {
    if (s !== 'succeeded') {
      for (const c of this.copiesOf.get(key) ?? []) if (this.status.get(c.key) === 'pending') this.finish(c.key, 'not-run');
      return;
    }
    for (const c of this.collectorsOf.get(key) ?? []) {
      for (const copy of this.collected(c, key)) {
        const st = this.status.get(copy);
        if (st === undefined || st === 'succeeded' || st === 'failed' || st === 'skipped' || st === 'not-run') continue;
        this.waitingOn.set(c.key, (this.waitingOn.get(c.key) ?? 0) + 1);
        this.addDownstream(copy, c);
      }
      if (this.speculates && this.status.get(c.key) === 'pending' && this.sourcesEnded(c)) this.earlyQ.push(this.resolve(c, false));
    }
  }

  /** Whether every step whose items a collector takes has succeeded (its items are all known). */
  private sourcesEnded(c: PlannedStep): boolean {
    const { keys } = splitCopyKey(c.key);
    return c.node.inputs.every((i) => i.kind !== 'collect' || this.status.get(this.collecting(i, keys).from) === 'succeeded');
  }

  /**
   * Collectors whose items are all known, while the copies they collect may
   * still run, resolved to take every copy's output (each that succeeds has
   * it). An executor may submit them now, so a collector starts the moment
   * its last copy ends, not once this process has heard that it did; one
   * whose copy fails does not run (its task finds its input failed) and the
   * bookkeeping ends it as not run, as it would. Made only for runs where
   * no step can be skipped; each is still handed out by `ready` in its turn.
   */
  takeEarlyCollectors(): PlannedStep[] {
    const out = this.earlyQ;
    this.earlyQ = [];
    return out;
  }

  /** The copies a collector takes from `source`'s items, in emission order (only its collect inputs over that source). */
  private collected(c: PlannedStep, source?: string): string[] {
    const out: string[] = [];
    const { keys } = splitCopyKey(c.key);
    for (const i of c.node.inputs) {
      if (i.kind !== 'collect') continue;
      const { from, output, ref, copies } = this.collecting(i, keys);
      if (!copies || (source !== undefined && from !== source)) continue;
      for (const k of this.emitted.get(`${from}\u0000${output}`)?.items ?? []) out.push(ref(k).stepKey);
    }
    return out;
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
      // A copy whose fan-out step failed before it was handed out: not run.
      if (this.status.get(s.key) !== 'pending') continue;
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
      // A step that collects mapped outputs is not started ahead: what it takes is known only when it is ready.
      if (this.upcomingSeen.has(d.key) || this.status.get(d.key) !== 'pending' || d.node.inputs.some((i) => i.kind === 'collect')) continue;
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
      case 'STEP_OUTPUT': {
        if (ev.output !== undefined) this.produced.add(key, ev.output);
        const item = ev.output === undefined ? null : splitItemOutput(ev.output);
        if (item) this.itemEmitted(key, item[0], item[1]);
        break;
      }
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
    if (this.copiesOf.has(key) || this.collectorsOf.has(key)) this.sourceEnded(key, s);
    for (const d of this.downstream.get(key) ?? []) {
      const left = (this.waitingOn.get(d.key) ?? 1) - 1;
      this.waitingOn.set(d.key, left);
      if (left === 0 && this.status.get(d.key) === 'pending') this.decide(d);
    }
  }

  /** All upstream steps ended: run it, skip it, or (after a failure) never run it. */
  private decide(s: PlannedStep): void {
    const collects = s.node.inputs.some((i) => i.kind === 'collect');
    const copies = collects ? new Set(this.collected(s)) : null;
    let skip = false;
    for (const u of [...s.upstream, ...(copies ?? [])]) {
      const st = this.status.get(u);
      if (st === 'failed' || st === 'not-run') return this.finish(s.key, 'not-run');
      // A skipped copy is left out of the list it is collected into.
      if (st === 'skipped' && !copies?.has(u)) skip = true;
    }
    const missing = s.node.inputs.find((i) => i.kind === 'step' && !this.produced.has(i.stepKey, i.output));
    if (skip || missing) {
      const why = missing && missing.kind === 'step' ? `output ${missing.output} of step ${missing.stepKey} was not produced` : 'an upstream step was skipped';
      this.events.push(event('STEP_SKIPPED', this.plan.runId, s.key, `step ${s.key} skipped: ${why}`));
      return this.finish(s.key, 'skipped');
    }
    if (!collects) {
      this.readyQ.push(s);
      return;
    }
    // Its collected inputs are known now: the outputs of the copies, in the order their items were emitted.
    const resolved = this.resolve(s, true);
    this.plan.put(resolved);
    this.readyQ.push(resolved);
  }

  /** A collector with its collect inputs as lists of the outputs collected, in emission order: those produced, or (`producedOnly` false) every copy's. */
  private resolve(s: PlannedStep, producedOnly: boolean): PlannedStep {
    const { keys } = splitCopyKey(s.key);
    const inputs = s.node.inputs.map((i): InputSource => {
      if (i.kind !== 'collect') return i;
      const { from, output, ref } = this.collecting(i, keys);
      const items = [...(this.emitted.get(`${from}\u0000${output}`)?.items ?? [])].map(ref);
      return { kind: 'list', items: producedOnly ? items.filter((it) => this.produced.has(it.stepKey, it.output)) : items };
    });
    return { ...s, node: { ...s.node, inputs } };
  }
}
