/**
 * The cluster executor's side of a run's task graph: which steps have been
 * submitted to the scheduler (with their futures), which wait to be, and
 * the task of each step. A static job goes in one graph at the start; a job
 * with dynamic outputs grows as it runs: copies of mapped steps are
 * submitted as their items are announced (their inputs are pick tasks whose
 * values the fan-out step put early on its worker), a step collecting them
 * once they have all ended, and what takes its output with it.
 *
 * Submissions go one at a time, in order: a graph may name tasks of the one
 * before, so it is sent once the scheduler has taken that one; the steps
 * that come meanwhile go together in the next.
 */
import type { Client } from '../../client/client.ts';
import type { Future } from '../../client/future.ts';
import { ref, type TaskDef } from '../../client/graph.ts';
import { WeftError } from '../../errors.ts';
import { MAX_KEY } from '../../protocol/messages.ts';
import type { InputSource } from '../definitions.ts';
import type { ExecutionContext } from '../executor.ts';
import type { ActiveExecution, PlannedStep } from '../plan.ts';
import { keepsRecord, pickKey, taskKey } from '../step/cluster-keys.ts';
import { splitCopyKey } from '../dynamic.ts';
import type { StepTaskSpec } from '../step/cluster-task.ts';
import { weftModule } from '../../util/self.ts';

const STEP_FN = `${weftModule('jobs/step/cluster-task').href}#runStep`;
const PICK_FN = `${weftModule('jobs/step/cluster-task').href}#pickOutput`;

/** What RunGraph needs of the run, besides its execution context. */
export interface RunGraphOptions {
  client: Client;
  active: ActiveExecution;
  /** The step task's spec without the step (the same for every step of the run). */
  spec: Omit<StepTaskSpec, 'stepKey'>;
  /** Resources each step's op asks for, by step (a copy: by its mapped step). */
  resources: ReadonlyMap<string, Record<string, number>>;
  /** A step's task ended (error null: it succeeded). */
  onEnded: (step: PlannedStep, error: Error | null) => void;
  /** A submission of these steps failed (the scheduler refused the graph, the connection was lost). */
  onSubmitError: (steps: readonly PlannedStep[], error: Error) => void;
  /** Outputs that are not fetched at the end are let go of as soon as no later submission can need them. */
  fetchOutputs: boolean;
}

/** Tasks to submit together: the steps' (by `keys`, which get futures) and the picks they take. */
interface Submission {
  graph: Map<string, TaskDef>;
  keys: string[];
  steps: PlannedStep[];
}

export class RunGraph {
  /** Futures of the steps submitted, by step key. */
  readonly futures = new Map<string, Future>();
  /** Steps waiting to be submitted, in the order they came (each after the steps whose outputs it takes). */
  private readonly held = new Map<string, PlannedStep>();
  private readonly submitted = new Set<string>();
  private queue: Submission | null = null;
  private sending: Promise<void> | null = null;
  /** Outputs of steps not in this run (a re-execution), loaded from the earlier run. */
  private readonly loaded: Map<string, unknown>;
  /** Whether steps may be submitted after the first graph (the plan has dynamic outputs): outputs are then kept until the run ends. */
  private readonly grows: boolean;

  constructor(
    private readonly ctx: ExecutionContext,
    private readonly o: RunGraphOptions,
  ) {
    this.loaded = new Map(ctx.loadedOutputs.map((l) => [`${l.stepKey}\u0000${l.output}`, l.value]));
    this.grows = ctx.plan.mappedOver.size > 0 || ctx.plan.steps.some((s) => s.node.op.dynamicOutputs.size > 0);
  }

  /** A step to submit once every task it takes is (a step ended or skipped by the bookkeeping is dropped). */
  hold(step: PlannedStep): void {
    if (!this.submitted.has(step.key)) this.held.set(step.key, step);
  }

  isSubmitted(key: string): boolean {
    return this.submitted.has(key);
  }

  /** Submits the steps held whose inputs are all submitted (or at hand); returns how many. */
  submitReady(): number {
    let n = 0;
    for (const [key, step] of this.held) {
      const st = this.o.active.statusOf(key);
      if (st !== 'pending' && st !== 'running') {
        this.held.delete(key);
        continue;
      }
      if (!step.node.inputs.every((i) => this.canTake(i))) continue;
      this.held.delete(key);
      this.add(step);
      n++;
    }
    if (n > 0) this.flush();
    return n;
  }

  /** Resolves once every submission made so far has been taken by the scheduler (or has failed). */
  async settled(): Promise<void> {
    while (this.sending) await this.sending;
  }

  /** Whether the task of an input exists (submitted, or a value at hand). */
  private canTake(i: InputSource): boolean {
    if (i.kind === 'step') return this.taskable(i.stepKey);
    if (i.kind === 'list') return i.items.every((it) => this.taskable(it.stepKey));
    // A collect input is resolved (to a list) once what it collects has ended; a mapped one only ever names a template.
    return i.kind !== 'collect' && i.kind !== 'mapped';
  }

  private taskable(stepKey: string): boolean {
    return this.submitted.has(stepKey) || this.o.active.statusOf(stepKey) === undefined;
  }

  /** Puts a step's task (and the picks it takes) in the next submission. */
  private add(step: PlannedStep): void {
    const q: Submission = (this.queue ??= { graph: new Map<string, TaskDef>(), keys: [], steps: [] });
    const inputs = step.node.inputs.map((src) => {
      if (src.kind === 'value') return null;
      if (src.kind === 'job-input') return this.ctx.inputValues[src.name];
      if (src.kind === 'step') return this.input(src.stepKey, src.output, q.graph);
      if (src.kind === 'list') return src.items.map((it) => this.input(it.stepKey, it.output, q.graph));
      throw new WeftError(`step ${step.key} has an unresolved ${src.kind} input`);
    });
    const key = taskKey(this.ctx.runId, step.key);
    if (key.length > MAX_KEY) throw new WeftError(`step key ${step.key.slice(0, 40)}... is too long for a task key on the cluster`);
    const task: TaskDef = { fn: STEP_FN, args: [{ ...this.o.spec, stepKey: step.key } satisfies StepTaskSpec, inputs] };
    const res = this.o.resources.get(splitCopyKey(step.key).template);
    if (res) task.resources = res;
    // Op tag weft/priority: the scheduler runs higher-priority tasks first, as the other executors do.
    if (step.priority !== 0) task.priority = step.priority;
    q.graph.set(key, task);
    q.keys.push(key);
    q.steps.push(step);
    this.submitted.add(step.key);
  }

  /** An input's reference: the step's task, its pick task (a step keeping a record of its outputs), or a value loaded from an earlier run. */
  private input(stepKey: string, output: string, graph: Map<string, TaskDef>): unknown {
    if (!this.submitted.has(stepKey)) return this.loaded.get(`${stepKey}\u0000${output}`);
    if (!keepsRecord(this.ctx.plan.step(stepKey).node.op)) return ref(taskKey(this.ctx.runId, stepKey));
    const pk = pickKey(this.ctx.runId, stepKey, output);
    if (pk.length > MAX_KEY) throw new WeftError(`output ${output} of step ${stepKey.slice(0, 40)}... makes too long a task key on the cluster`);
    // Sent with every graph that takes it: an earlier one's may be gone once the steps that took it ended.
    graph.set(pk, { fn: PICK_FN, args: [ref(taskKey(this.ctx.runId, stepKey)), output] });
    return ref(pk);
  }

  /** Sends the queued submission, unless one is on its way (it is sent after that one). */
  private flush(): void {
    if (this.sending || !this.queue) return;
    const q = this.queue;
    this.queue = null;
    this.sending = this.send(q).finally(() => {
      this.sending = null;
      this.flush();
    });
  }

  private async send(q: Submission): Promise<void> {
    let futures: Record<string, Future>;
    try {
      futures = await this.o.client.compute(q.graph, { keys: q.keys });
    } catch (err) {
      this.o.onSubmitError(q.steps, err instanceof Error ? err : new Error(String(err)));
      return;
    }
    for (const step of q.steps) {
      const f = futures[taskKey(this.ctx.runId, step.key)];
      if (!f) continue;
      this.futures.set(step.key, f);
      // Outputs not fetched at the end are not held either (unless later submissions may take them): the scheduler frees each once the steps that take it are done.
      const settled = (): void => {
        if (!this.o.fetchOutputs && !this.grows) f.release();
      };
      f.done().then(
        () => {
          settled();
          this.o.onEnded(step, null);
        },
        (error: unknown) => {
          settled();
          this.o.onEnded(step, error instanceof Error ? error : new Error(String(error)));
        },
      );
    }
  }
}
