/**
 * Runs a job with an executor: validates the run config, builds the plan,
 * passes the executor's events through (keeping outputs for downstream
 * steps), and ends the run with RUN_SUCCESS, RUN_FAILURE or RUN_CANCELED.
 */
import { WeftError, serializeError } from '../errors.ts';
import { decode, encodeOwned } from '../protocol/codec.ts';
import type { JobSpec, RunConfig } from './definitions.ts';
import { RunConfigError, StepFailureError } from './errors.ts';
import { checkReconstructable } from './location.ts';
import { event, type RunEvent } from './events.ts';
import { mergeConfig, type CodeLocation, type ExecutionContext, type ExecutorDefinition, type LoadedOutput } from './executor.ts';
import { OutputStoreError, type OutputStore } from './outputs.ts';
import type { RecordedRun, RunRecorder } from './recording.ts';
import { resolveRunConfig } from './run-config.ts';
import { OP_SELECTION_TAG, selectOps } from './selection.ts';
import { ActiveExecution, buildPlan, type PlannedStep, type ReplayedItems } from './plan.ts';
import { runStepAttempt } from './step-runner.ts';

export interface ExecuteOptions {
  runConfig?: RunConfig;
  /** Values of the job's inputs (a job made from a graph with inputs). */
  inputValues?: Record<string, unknown>;
  /** Abort to cancel the run: running steps end, the run ends as canceled. */
  signal?: AbortSignal;
  runId?: string;
  /** Called with every event as it happens. */
  onEvent?: (ev: RunEvent) => void;
  /** Ignore the run config's `execution` section (executeInProcess overrides the executor). */
  ignoreExecutionConfig?: boolean;
  /**
   * Where step outputs are kept beyond the run (needed to re-execute it).
   * Default: the instance's, if given one; null, or no instance: outputs
   * live in this process's memory for the run only.
   */
  outputStore?: OutputStore | null;
  /**
   * Records the run, its events and its outputs (an Instance: runs/instance.ts).
   * Its output store is the run's unless `outputStore` names another.
   */
  instance?: RunRecorder;
  /** Tags of the run, over the job's own. */
  tags?: Record<string, string>;
  /** A re-execution: the run it re-executes and the first run of the line (lineage tags). */
  parentRunId?: string;
  rootRunId?: string;
  /**
   * Run only these steps (a re-execution); the inputs they take from steps
   * not run load from `outputStore`, from the run named in `loadOutputs`.
   */
  stepKeys?: readonly string[];
  loadOutputs?: readonly { stepKey: string; output: string; runId: string }[];
  /**
   * Runs only the steps these clauses select (Dagster's op selection, in
   * its syntax: `*c`, `a+`, `b`); an input from a step left out comes from
   * `runConfig.ops.OP.inputs.INPUT`.
   */
  opSelection?: readonly string[];
  /** With stepKeys: the items steps not run emitted in the earlier run, from which the copies in stepKeys are made. */
  replayItems?: readonly ReplayedItems[];
}

export interface StepFailure {
  stepKey: string;
  error: StepFailureError;
}

export class JobExecutionResult {
  constructor(
    readonly runId: string,
    readonly jobName: string,
    readonly success: boolean,
    readonly canceled: boolean,
    readonly allEvents: readonly RunEvent[],
    readonly failures: readonly StepFailure[],
    /** Steps that never ran because a step upstream failed (or the run was cancelled). */
    readonly stepsNotRun: readonly string[],
    private readonly outputs: ReadonlyMap<string, { value: unknown }>,
  ) {}

  /** The value of a step's output (`result` unless named); throws if it was not produced. */
  outputForNode(node: string, output = 'result'): unknown {
    const o = this.outputs.get(outputKey(node, output));
    if (!o) throw new WeftError(`step ${node} of run ${this.runId} did not produce output ${output}${this.allEvents.some((e) => e.stepKey === node) ? '' : ` (no step ${node} ran)`}`);
    return o.value;
  }

  /** The events of one step, in order. */
  eventsForNode(node: string): RunEvent[] {
    return this.allEvents.filter((e) => e.stepKey === node);
  }
}

function outputKey(step: string, output: string): string {
  return `${step}\u0000${output}`;
}

/** The outputs a re-execution takes from earlier runs, read from the output store before any step starts. */
async function loadOutputs(want: NonNullable<ExecuteOptions['loadOutputs']>, store: OutputStore | null): Promise<LoadedOutput[]> {
  if (want.length === 0) return [];
  if (!store) throw new OutputStoreError('a run that loads outputs of earlier runs needs the output store that holds them (outputStore)');
  return Promise.all(
    want.map(async (w) => {
      const bytes = await store.get({ runId: w.runId, stepKey: w.stepKey, output: w.output });
      if (!bytes) throw new OutputStoreError(`output ${w.output} of step ${w.stepKey} of run ${w.runId} is not in ${store.description}`);
      return { stepKey: w.stepKey, output: w.output, runId: w.runId, bytes, value: decode(bytes) };
    }),
  );
}

/** Runs `job` with `executorDef`. */
export async function executeJob(whole: JobSpec, executorDef: ExecutorDefinition, location: CodeLocation | null, opts: ExecuteOptions = {}): Promise<JobExecutionResult> {
  const runId = opts.runId ?? globalThis.crypto.randomUUID();
  // An op selection cuts the job first: only the selected ops' config is checked, and the steps left out never run.
  const selection = opts.opSelection ?? whole.opSelection;
  const job = selection ? selectOps(whole, selection, mergeConfig(whole.defaultRunConfig, opts.runConfig ?? {}) as RunConfig) : whole;
  const { opConfig, executorConfig, runConfig } = resolveRunConfig(job, executorDef, opts.runConfig, opts.ignoreExecutionConfig);
  const inputValues = opts.inputValues ?? {};
  const missingInputs = job.inputs.filter((n) => !(n in inputValues));
  if (missingInputs.length > 0) throw new RunConfigError(missingInputs.map((n) => ({ path: `inputValues.${n}`, message: `job ${job.name} needs input ${n}` })));
  for (const n of Object.keys(inputValues)) if (!job.inputs.includes(n)) throw new RunConfigError([{ path: `inputValues.${n}`, message: `job ${job.name} has no input ${n} (inputs: ${job.inputs.join(', ') || 'none'})` }]);
  if (executorDef.requirementsFor(executorConfig).includes('reconstructable-job')) await checkReconstructable(whole, location);

  const store = opts.outputStore === undefined ? (opts.instance?.outputStore ?? null) : opts.outputStore;
  const outputs = new Map<string, { value: unknown; bytes?: Uint8Array }>();
  const loaded = await loadOutputs(opts.loadOutputs ?? [], store);
  for (const l of loaded) outputs.set(outputKey(l.stepKey, l.output), { value: l.value, bytes: l.bytes });
  const plan = buildPlan(runId, job, opConfig, opts.stepKeys ? { stepKeys: opts.stepKeys, loaded, ...(opts.replayItems ? { items: opts.replayItems } : {}) } : undefined);
  /** Outputs being written to the store: all are written before the run ends. */
  const writes: Promise<void>[] = [];
  let storeError: Error | null = null;
  const storeOutput = (stepKey: string, output: string, bytes: Uint8Array): void => {
    if (!store) return;
    writes.push(
      store.put({ runId, stepKey, output }, bytes).catch((err: unknown) => {
        storeError ??= err instanceof Error ? err : new Error(String(err));
      }),
    );
  };
  const events: RunEvent[] = [];
  const controller = new AbortController();
  let record: RecordedRun | null = null;
  const emit = (ev: RunEvent): void => {
    events.push(ev);
    record?.event(ev);
    opts.onEvent?.(ev);
  };
  const onAbort = (): void => controller.abort(opts.signal?.reason);
  controller.signal.addEventListener('abort', () => emit(event('RUN_CANCELING', runId, null, `canceling run ${runId}: ${String((controller.signal.reason as Error | undefined)?.message ?? controller.signal.reason ?? 'asked to')}`)), { once: true });
  if (opts.instance) {
    record = await opts.instance.startRun(
      {
        runId,
        job: job.name,
        location: location?.module ?? null,
        runConfig,
        inputValues,
        tags: { ...job.tags, ...opts.tags, ...(selection ? { [OP_SELECTION_TAG]: selection.join(',') } : {}) },
        executor: executorDef.name,
        parentRunId: opts.parentRunId ?? null,
        rootRunId: opts.rootRunId ?? null,
        stepKeys: opts.stepKeys ?? null,
        outputsStored: store !== null,
      },
      (reason) => controller.abort(new Error(reason)),
    );
  }
  if (opts.signal?.aborted) controller.abort(opts.signal.reason);
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const sourceValue = (step: PlannedStep, i: number): { value: unknown; bytes?: Uint8Array } => {
    const src = step.node.inputs[i];
    if (!src) throw new WeftError(`step ${step.key} has no input ${i}`);
    if (src.kind === 'value') return { value: src.value };
    if (src.kind === 'job-input') return { value: inputValues[src.name] };
    if (src.kind === 'list') {
      return {
        value: src.items.map((it) => {
          const o = outputs.get(outputKey(it.stepKey, it.output));
          if (!o) throw new WeftError(`step ${step.key} collects output ${it.output} of step ${it.stepKey}, which was not produced`);
          return o.value;
        }),
      };
    }
    if (src.kind !== 'step') throw new WeftError(`step ${step.key}: input ${i} is ${src.kind === 'mapped' ? 'the item of a mapped step' : 'a collect'} that was not resolved; this is a bug in weft`);
    const o = outputs.get(outputKey(src.stepKey, src.output));
    if (!o) throw new WeftError(`step ${step.key} needs output ${src.output} of step ${src.stepKey}, which was not produced`);
    return o;
  };
  const ctx: ExecutionContext = {
    runId,
    job,
    plan,
    runConfig,
    opSelection: selection ?? null,
    signal: controller.signal,
    location,
    inputValues,
    loadedOutputs: loaded,
    outputDirectory: store?.directory ?? null,
    activeExecution: () => new ActiveExecution(plan),
    inputsFor: (step) => step.node.inputs.map((_, i) => sourceValue(step, i).value),
    inputBytesFor: (step) =>
      step.node.inputs.map((_, i) => {
        const o = sourceValue(step, i);
        if (!o.bytes) o.bytes = encodeOwned(o.value);
        return o.bytes;
      }),
    setOutputValue: (stepKey, output, value) => {
      outputs.set(outputKey(stepKey, output), { value });
    },
    runStepHere: (step, attempt, o = {}) => runStepAttempt({ runId, step, inputs: ctx.inputsFor(step), attempt, retries: o.retries ?? true, signal: controller.signal }),
    engineEvent: (message, data) => event('ENGINE_EVENT', runId, null, message, data ? { data } : {}),
  };

  emit(event('RUN_START', runId, null, `started run ${runId} of job ${job.name} with executor ${executorDef.name}`, { data: { job: job.name, executor: executorDef.name, steps: plan.steps.length, stepKeys: plan.steps.map((st) => st.key) } }));
  const status = new Map<string, RunEvent['type']>();
  let engineError: unknown = null;
  /** An event of the executor: its output kept (and stored), its step's end noted, then passed on. */
  const take = (ev: RunEvent): void => {
    if (ev.type === 'STEP_OUTPUT' && ev.stepKey !== null && ev.output !== undefined) {
      let value = ev.value;
      if (value === undefined && ev.bytes) value = decode(ev.bytes);
      let bytes = ev.bytes;
      // An output whose value stayed where it ran (the cluster's, not fetched) is stored there, or not at all.
      const here = 'value' in ev || bytes !== undefined;
      if (store && here && !ev.stored && !storeError) {
        try {
          bytes ??= encodeOwned(value);
          storeOutput(ev.stepKey, ev.output, bytes);
        } catch (err) {
          storeError = new OutputStoreError(`output ${ev.output} of step ${ev.stepKey} cannot be stored: ${(err as Error).message}. Outputs of a run with an output store must be values msgpack can hold.`);
        }
      }
      outputs.set(outputKey(ev.stepKey, ev.output), bytes ? { value, bytes } : { value });
      if (ev.value === undefined) ev.value = value;
    }
    if (ev.stepKey !== null && (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_SKIPPED')) status.set(ev.stepKey, ev.type);
    emit(ev);
  };
  try {
    const exec = executorDef.create({ config: executorConfig, job });
    for await (const got of exec.execute(ctx)) {
      if (isEventList(got)) for (const ev of got) take(ev);
      else take(got);
    }
  } catch (err) {
    engineError = err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  await Promise.all(writes);
  if (storeError !== null && engineError === null) engineError = storeError;

  const failures: StepFailure[] = [];
  for (const ev of events) {
    if (ev.type === 'STEP_FAILURE' && ev.stepKey !== null) failures.push({ stepKey: ev.stepKey, error: new StepFailureError(ev.stepKey, ev.error ?? { name: 'Error', message: ev.message }) });
  }
  const notRun = [...plan.steps, ...plan.copies()].filter((s) => !status.has(s.key)).map((s) => s.key);
  const canceled = controller.signal.aborted;
  let success = false;
  if (canceled) {
    emit(event('RUN_CANCELED', runId, null, `run ${runId} was canceled${notRun.length > 0 ? `; steps not run or not finished: ${notRun.join(', ')}` : ''}`));
  } else if (engineError !== null) {
    emit(event('RUN_FAILURE', runId, null, `run ${runId} failed in executor ${executorDef.name}: ${(engineError as Error).message ?? String(engineError)}`, { error: serializeError(engineError) }));
  } else if (failures.length > 0 || notRun.length > 0) {
    const parts = [];
    if (failures.length > 0) parts.push(`steps failed: ${failures.map((f) => f.stepKey).join(', ')}`);
    if (notRun.length > 0) parts.push(`steps not run: ${notRun.join(', ')}`);
    emit(event('RUN_FAILURE', runId, null, `run ${runId} of job ${job.name} failed; ${parts.join('; ')}`, failures[0] ? { error: serializeError(failures[0].error) } : {}));
  } else {
    success = true;
    emit(event('RUN_SUCCESS', runId, null, `run ${runId} of job ${job.name} succeeded`));
  }
  await record?.finish();
  return new JobExecutionResult(runId, job.name, success, canceled, events, failures, notRun, outputs);
}

function isEventList(got: RunEvent | readonly RunEvent[]): got is readonly RunEvent[] {
  return Array.isArray(got);
}
