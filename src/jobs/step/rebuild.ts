/**
 * The step side's one way to rebuild a run's plan from its code location:
 * the job from the Definitions, the op config checked against the ops'
 * schemas, the plan built. `weft step`, the multiprocess executor's step
 * processes, the queue workers and the cluster executor's step tasks all go
 * through here.
 */
import { WeftError } from '../../errors.ts';
import type { RunConfig } from '../definitions.ts';
import { buildPlan, type ExecutionPlan } from '../plan.ts';
import type { CodeLocationJobs } from '../location.ts';
import { resolveOpConfig } from '../run-config.ts';
import { selectOps } from '../selection.ts';

/**
 * The plans of the latest runs this process served: a process that runs
 * many steps of one run (a warm step process, a queue worker) builds its plan
 * once, not once per step (a 1,000-step plan per step of a 1,000-step run).
 */
const recent = new Map<string, { defs: CodeLocationJobs; plan: ExecutionPlan }>();
const RECENT_RUNS = 16;

export function rebuildPlan(defs: CodeLocationJobs, run: { runId: string; jobName: string; runConfig: RunConfig; opSelection?: readonly string[] | undefined }): ExecutionPlan {
  const hit = recent.get(run.runId);
  if (hit && hit.defs === defs && hit.plan.jobName === run.jobName) return hit.plan;
  const whole = defs.getJob(run.jobName);
  const job = run.opSelection ? selectOps(whole, run.opSelection, run.runConfig) : whole;
  const { opConfig, issues } = resolveOpConfig(job, run.runConfig);
  if (issues.length > 0) throw new WeftError(`invalid op config: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  const plan = buildPlan(run.runId, job, opConfig);
  recent.delete(run.runId);
  recent.set(run.runId, { defs, plan });
  if (recent.size > RECENT_RUNS) recent.delete(recent.keys().next().value as string);
  return plan;
}
