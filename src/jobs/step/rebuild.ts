/**
 * The step side's one way to rebuild a run's plan from its code location:
 * the job from the Definitions, the op config checked against the ops'
 * schemas, the plan built. `weft step`, the multiprocess executor's step
 * processes and the cluster executor's step tasks all go through here.
 */
import { WeftError } from '../../errors.ts';
import type { RunConfig } from '../definitions.ts';
import { buildPlan, type ExecutionPlan } from '../plan.ts';
import type { Definitions } from '../repository.ts';
import { resolveOpConfig } from '../run-config.ts';

export function rebuildPlan(defs: Definitions, run: { runId: string; jobName: string; runConfig: RunConfig }): ExecutionPlan {
  const job = defs.getJob(run.jobName);
  const { opConfig, issues } = resolveOpConfig(job, run.runConfig);
  if (issues.length > 0) throw new WeftError(`invalid op config: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return buildPlan(run.runId, job, opConfig);
}
