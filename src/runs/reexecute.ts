/**
 * Re-execution, as Dagster's: a new run of a stored run's job that runs
 * some of its steps and loads every other input from the outputs of the
 * runs before it. From failure: the steps that failed, were interrupted
 * (started, never ended) or never ran, and every step downstream of them;
 * the steps that succeeded or were skipped stay as they were. Or any
 * selection of steps (selection.ts). Works on every executor: only the
 * plan and the inputs differ from a first run.
 */
import type { JobSpec } from '../jobs/definitions.ts';
import { DefinitionError } from '../jobs/errors.ts';
import { copyKey, isCopy, itemOutput, splitCopyKey, splitItemOutput } from '../jobs/dynamic.ts';
import type { ReplayedItems } from '../jobs/plan.ts';
import type { RunEvent } from '../jobs/events.ts';
import type { ExecutorDefinition } from '../jobs/executor.ts';
import type { JobDefinition } from '../jobs/job.ts';
import type { OutputStore } from '../jobs/outputs.ts';
import { loadDefinitions } from '../jobs/repository.ts';
import { executeJob, type ExecuteOptions, type JobExecutionResult } from '../jobs/run.ts';
import { decode } from '../protocol/codec.ts';
import { ReexecutionError, RunNotFoundError } from './errors.ts';
import { OUTPUTS_TAG, PARENT_RUN_TAG, ROOT_RUN_TAG, type RunRecord } from './records.ts';
import { stepOutcomes } from './outcomes.ts';
import { OP_SELECTION_TAG, selectOps, selectSteps, withDownstream } from '../jobs/selection.ts';
import type { RunStorage } from './storage.ts';
import type { Instance } from './instance.ts';

/** How far back a re-execution looks for outputs: the parent, its parent, and so on. */
const MAX_ANCESTORS = 100;
/** Tags of a run that its re-executions do not inherit (they get their own). */
const OWN_TAGS = new Set([PARENT_RUN_TAG, ROOT_RUN_TAG, OUTPUTS_TAG]);

export interface ReexecuteOptions extends Omit<ExecuteOptions, 'instance' | 'stepKeys' | 'loadOutputs' | 'replayItems' | 'opSelection' | 'parentRunId' | 'rootRunId' | 'runConfig' | 'inputValues'> {
  /** The failed, interrupted and never-run steps, and everything downstream of them. */
  fromFailure?: boolean;
  /** Steps to run, in Dagster's selection syntax (`*c`, `b+`). */
  stepSelection?: readonly string[];
  /** The job, for a run not launched from a code location (executeInProcess); default: rebuilt from the run's code location. */
  job?: JobDefinition;
  /** Default: the job's executor in its Definitions (or the in-process one for a job given here). */
  executorDef?: ExecutorDefinition;
}

export interface ReexecutionPlan {
  parent: RunRecord;
  rootRunId: string;
  stepKeys: string[];
  /** Inputs of those steps from steps not run: the run whose output each loads. */
  loadOutputs: { stepKey: string; output: string; runId: string }[];
  /** Items of steps not run again, from which the copies among stepKeys are made. */
  replayItems: ReplayedItems[];
}

/** Which steps a re-execution of `parent` runs, and where its other inputs come from. */
export async function planReexecution(storage: RunStorage, store: OutputStore, parent: RunRecord, whole: JobSpec, opts: { fromFailure?: boolean; stepSelection?: readonly string[] }): Promise<ReexecutionPlan> {
  // A run of an op selection: its re-executions stay within it (the steps left out never ran, and their inputs came from run config).
  const selection = opSelectionOf(parent);
  const job = selection ? selectOps(whole, selection, parent.runConfig) : whole;
  if (parent.tags[OUTPUTS_TAG] === 'memory') throw new ReexecutionError(`run ${parent.runId} kept its outputs in memory (executeInProcess without an output store), so no later run can load them: run it again in full, or launch it with an output store to re-execute it later`);
  if (!opts.fromFailure && !opts.stepSelection) throw new ReexecutionError('say which steps to re-execute: fromFailure, or a stepSelection');
  if (opts.fromFailure && opts.stepSelection) throw new ReexecutionError('re-execute from failure or a step selection, not both');
  const parentEvents = (await storage.events(parent.runId)).map((e) => e.event);
  // Items come from the nearest run of the line that emitted them: a re-execution replays its parent's without emitting them again.
  const lineage = await ancestors(storage, parent, parentEvents);
  const mapping = new Mapping(job, lineage.map((r) => r.events));
  let stepKeys: string[];
  if (opts.fromFailure) {
    if (parent.status !== 'FAILURE' && parent.status !== 'CANCELED') throw new ReexecutionError(`run ${parent.runId} did not fail (it is ${parent.status}): only a failed or canceled run re-executes from failure`);
    // A first run's copies of mapped steps count as its steps (each item called for one of each); a re-execution lists its own.
    const ran = parent.stepKeys ? [...parent.stepKeys] : [...job.steps.filter((st) => !st.mapped).map((st) => st.key), ...mapping.copies()];
    const outcomes = stepOutcomes(ran, parentEvents);
    const again = [...outcomes].filter(([, o]) => o === 'failed' || o === 'interrupted' || o === 'not-run').map(([k]) => k);
    if (again.length === 0) throw new ReexecutionError(`run ${parent.runId} has no failed, interrupted or unrun step to re-execute`);
    stepKeys = mapping.downstream(again);
  } else {
    // A clause may name a copy of the parent run (`plus[k1]`, `plus[k1]+`, `plus[k1]*`): it and (with + or *) what depends on it.
    const clauses = (opts.stepSelection ?? []).flatMap((c) => c.split(',')).map((c) => c.trim()).filter((c) => c !== '');
    const copies = clauses.filter((c) => isCopy(c.replace(/[*+]+$/, '')));
    const made = new Set(mapping.copies());
    const picked: string[] = [];
    for (const c of copies) {
      const key = c.replace(/[*+]+$/, '');
      if (/^[*+]/.test(c)) throw new ReexecutionError(`step selection ${JSON.stringify(c)}: a copy of a mapped step takes no upstream steps (* or + before it); select its op instead`);
      if (!made.has(key)) throw new ReexecutionError(`step selection ${JSON.stringify(c)} names no copy that run ${parent.runId} made (its copies: ${[...made].slice(0, 10).join(', ')}${made.size > 10 ? ', ...' : ''})`);
      picked.push(...(c === key ? [key] : mapping.downstream([key])));
    }
    const rest = clauses.filter((c) => !copies.includes(c));
    stepKeys = [...new Set([...picked, ...(rest.length > 0 ? selectedSteps(job, rest) : [])])];
    if (stepKeys.some((k) => job.step(k)?.mapped)) stepKeys = mapping.downstream(stepKeys);
  }

  // Outputs of the steps not run, from the nearest run of the line that produced each (and still has it).
  const source = async (stepKey: string, output: string): Promise<string | null> => {
    for (const run of lineage) {
      if (run.produced.has(`${stepKey}\u0000${output}`) && (await store.has({ runId: run.runId, stepKey, output }))) return run.runId;
    }
    return null;
  };
  const chosen = new Set(stepKeys);
  const loadOutputs: ReexecutionPlan['loadOutputs'] = [];
  // A set beside the list: a collecting step takes thousands of outputs, each looked up here.
  const loading = new Set<string>();
  for (let changed = true; changed; ) {
    changed = false;
    loadOutputs.length = 0;
    loading.clear();
    for (const key of [...chosen]) {
      for (const i of mapping.inputsOf(key)) {
        if (chosen.has(i.stepKey) || loading.has(`${i.stepKey}\u0000${i.output}`)) continue;
        const runId = await source(i.stepKey, i.output);
        if (runId) {
          loading.add(`${i.stepKey}\u0000${i.output}`);
          loadOutputs.push({ stepKey: i.stepKey, output: i.output, runId });
          continue;
        }
        // A collected copy that produced nothing (skipped) is left out of the list, as it was.
        if (i.collected) continue;
        const outcome = stepOutcomes([i.stepKey], parentEvents).get(i.stepKey);
        if (opts.stepSelection && outcome !== 'skipped') throw new ReexecutionError(`step ${key} takes output ${i.output} of step ${i.stepKey}, which no run from ${parent.runId} back produced (or the output store lost it): add ${i.stepKey} to the selection`);
        if (outcome === 'succeeded') {
          // Its run said it succeeded but the store does not have the output (the launcher died before writing it): run it again.
          chosen.add(i.stepKey);
          changed = true;
        }
      }
    }
  }
  const order = new Map(job.steps.map((st, n) => [st.key, n]));
  const ordered = [...chosen].sort((a, b) => (order.get(splitCopyKey(a).template) ?? 0) - (order.get(splitCopyKey(b).template) ?? 0));
  return { parent, rootRunId: parent.rootRunId ?? parent.runId, stepKeys: ordered, loadOutputs, replayItems: mapping.itemsNotRerun(chosen) };
}

/**
 * A job's mapped steps as a run of it made them: the items its steps
 * emitted (in order), the copies those called for, and what each copy
 * takes. Re-execution runs copies again with the parent's mapping keys.
 */
class Mapping {
  /** Per step that emitted (a copy key, maybe), per dynamic output: its mapping keys in order. */
  private readonly items = new Map<string, Map<string, string[]>>();
  private readonly depth = new Map<string, number>();

  /** `lines`: the events of the runs of the line, nearest first; each step's items come from the nearest that has them. */
  constructor(
    private readonly job: JobSpec,
    lines: readonly (readonly RunEvent[])[],
  ) {
    for (const st of job.steps) if (st.mapped) this.depth.set(st.key, (this.depth.get(st.mapped.stepKey) ?? 0) + 1);
    for (const events of lines) {
      const found = new Map<string, Map<string, Set<string>>>();
      for (const ev of events) {
        if (ev.type !== 'STEP_OUTPUT' || ev.stepKey === null || ev.output === undefined || this.items.has(ev.stepKey)) continue;
        const item = splitItemOutput(ev.output);
        if (!item) continue;
        let outs = found.get(ev.stepKey);
        if (!outs) found.set(ev.stepKey, (outs = new Map()));
        // A set per output keeps emission order and drops a key a retry emitted again (one copy).
        const keys = outs.get(item[0]) ?? new Set<string>();
        keys.add(item[1]);
        outs.set(item[0], keys);
      }
      for (const [k, v] of found) this.items.set(k, new Map([...v].map(([o, ks]) => [o, [...ks]])));
    }
  }

  private keysOf(source: string, output: string): readonly string[] {
    return this.items.get(source)?.get(output) ?? [];
  }

  /** Every copy the run's items called for. */
  copies(): string[] {
    const out: string[] = [];
    for (const [source, outs] of this.items) {
      const { template, keys } = splitCopyKey(source);
      for (const [output, ks] of outs) for (const st of this.job.steps) if (st.mapped?.stepKey === template && st.mapped.output === output) for (const k of ks) out.push(copyKey(st.key, [...keys, k]));
    }
    return out;
  }

  /** The copies of template `t` the run's items called for (under `outer` mapping keys). */
  private copiesOfTemplate(t: string, outer: readonly string[] | null): string[] {
    const over = this.job.step(t)?.mapped;
    if (!over) return [t];
    const sources = outer ? [copyKey(over.stepKey, outer.slice(0, (this.depth.get(t) ?? 1) - 1))] : [...this.items.keys()].filter((k) => splitCopyKey(k).template === over.stepKey);
    return sources.flatMap((src) => this.keysOf(src, over.output).map((k) => copyKey(t, [...splitCopyKey(src).keys, k])));
  }

  /**
   * `keys` (steps and copies) and every step and copy downstream of them:
   * a copy's downstream copies have its mapping keys; a step's, all the
   * run's (copies of a step that runs again are made as it emits).
   */
  downstream(keys: readonly string[]): string[] {
    const out = new Set<string>(keys);
    // Per template once: thousands of failed copies share a few templates.
    const below = new Map<string, string[]>();
    for (const k of keys) {
      const { template, keys: mk } = splitCopyKey(k);
      let under = below.get(template);
      if (!under) below.set(template, (under = withDownstream(this.job, [template])));
      for (const d of under) {
        if (d === template) continue;
        const depth = this.depth.get(d) ?? 0;
        if (depth === 0) out.add(d);
        else if (mk.length === 0) for (const c of this.copiesOfTemplate(d, null)) out.add(c);
        else if (depth <= mk.length) out.add(copyKey(d, mk.slice(0, depth)));
        // Deeper: made by the emissions of a copy that runs again.
      }
    }
    return [...out];
  }

  /** Where a step's or copy's inputs come from, as the run made it (`collected`: one of a list). */
  inputsOf(key: string): { stepKey: string; output: string; collected?: true }[] {
    const { template, keys } = splitCopyKey(key);
    const node = this.job.step(template);
    if (!node) return [];
    const out: { stepKey: string; output: string; collected?: true }[] = [];
    for (const i of node.inputs) {
      if (i.kind === 'step') out.push({ stepKey: copyKey(i.stepKey, keys.slice(0, this.depth.get(i.stepKey) ?? 0)), output: i.output });
      else if (i.kind === 'mapped') out.push({ stepKey: copyKey(i.stepKey, keys.slice(0, -1)), output: itemOutput(i.output, keys.at(-1) as string) });
      else if (i.kind === 'collect' && i.items) {
        const from = copyKey(i.stepKey, keys);
        for (const k of this.keysOf(from, i.output)) out.push({ stepKey: from, output: itemOutput(i.output, k), collected: true });
      } else if (i.kind === 'collect') {
        const over = this.job.step(i.stepKey)?.mapped;
        if (!over) continue;
        for (const k of this.keysOf(copyKey(over.stepKey, keys), over.output)) out.push({ stepKey: copyKey(i.stepKey, [...keys, k]), output: i.output, collected: true });
      }
    }
    return out;
  }

  /** The items of steps that do not run again: the copies that do are made from them. */
  itemsNotRerun(chosen: ReadonlySet<string>): ReplayedItems[] {
    const out: ReplayedItems[] = [];
    for (const [stepKey, outs] of this.items) if (!chosen.has(stepKey)) for (const [output, keys] of outs) out.push({ stepKey, output, keys });
    return out;
  }
}

/** The op selection a run was launched with (its tag), or null. */
export function opSelectionOf(run: RunRecord): string[] | null {
  const tag = run.tags[OP_SELECTION_TAG];
  return tag ? tag.split(',') : null;
}

/** selectSteps, its mistakes said as the re-execution's (the CLI's exit code 1, as any refused re-execution). */
function selectedSteps(job: JobSpec, clauses: readonly string[]): string[] {
  try {
    return selectSteps(job, clauses);
  } catch (err) {
    throw err instanceof DefinitionError ? new ReexecutionError(err.message) : err;
  }
}

async function ancestors(storage: RunStorage, parent: RunRecord, parentEvents: RunEvent[]): Promise<{ runId: string; produced: Set<string>; events: RunEvent[] }[]> {
  const produced = (evs: RunEvent[]): Set<string> => new Set(evs.filter((e) => e.type === 'STEP_OUTPUT' && e.stepKey !== null).map((e) => `${e.stepKey}\u0000${e.output ?? 'result'}`));
  const line = [{ runId: parent.runId, produced: produced(parentEvents), events: parentEvents }];
  let next = parent.parentRunId;
  while (next && line.length < MAX_ANCESTORS) {
    const run = await storage.getRun(next);
    if (!run) break;
    const events = (await storage.events(run.runId)).map((e) => e.event);
    line.push({ runId: run.runId, produced: produced(events), events });
    next = run.parentRunId;
  }
  return line;
}

/** Re-executes a stored run (see the module's comment). */
export async function reexecute(instance: Instance, runId: string, opts: ReexecuteOptions = {}): Promise<JobExecutionResult> {
  const parent = await instance.storage.getRun(runId);
  if (!parent) throw new RunNotFoundError(runId);
  let job: JobDefinition;
  let executorDef = opts.executorDef;
  if (opts.job) job = opts.job;
  else {
    if (!parent.location) throw new ReexecutionError(`run ${runId} of job ${parent.job} was not launched from a code location, so weft cannot rebuild its job: pass the job (reexecute(..., { job }))`);
    const defs = await loadDefinitions(parent.location);
    const found = defs.findJob(parent.job);
    if (!found) throw new ReexecutionError(`the code location ${parent.location} no longer has job ${parent.job} (jobs: ${defs.jobNames.join(', ') || 'none'})`);
    job = found;
    executorDef ??= defs.executorFor(job);
  }
  if (!executorDef) {
    const { inProcessExecutor } = await import('../jobs/executors/in-process.ts');
    executorDef = inProcessExecutor as ExecutorDefinition;
  }
  const plan = await planReexecution(instance.storage, instance.outputStore, parent, job, opts);
  const tags = Object.fromEntries(Object.entries(parent.tags).filter(([k]) => !OWN_TAGS.has(k)));
  const { fromFailure: _f, stepSelection: _s, job: _j, executorDef: _e, ...execOpts } = opts;
  return executeJob(job, executorDef, parent.location ? { module: parent.location, jobName: parent.job } : null, {
    ...execOpts,
    instance,
    runConfig: parent.runConfig,
    inputValues: parent.inputValues ? (decode(parent.inputValues) as Record<string, unknown>) : {},
    tags: { ...tags, ...opts.tags },
    parentRunId: parent.runId,
    rootRunId: plan.rootRunId,
    stepKeys: plan.stepKeys,
    loadOutputs: plan.loadOutputs,
    replayItems: plan.replayItems,
    ...(opSelectionOf(parent) ? { opSelection: opSelectionOf(parent) as string[] } : {}),
  });
}
