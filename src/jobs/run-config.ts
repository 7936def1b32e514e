/** Run config: validated against the ops' schemas and the executor's, errors naming the path. */
import type { JobSpec, RunConfig } from './definitions.ts';
import { RunConfigError } from './errors.ts';
import { mergeConfig, type ExecutorDefinition } from './executor.ts';
import { configIssues, strayKeys, unknownKeyMessage } from '../util/config-issues.ts';

/** Validates run config against the job's op schemas and the executor's; errors name the path. */
export function resolveRunConfig(job: JobSpec, executorDef: ExecutorDefinition, given: RunConfig | undefined, ignoreExecution = false): { opConfig: Map<string, unknown>; executorConfig: unknown; runConfig: RunConfig } {
  const issues: { path: string; message: string }[] = [];
  const merged = mergeConfig(job.defaultRunConfig, given ?? {}) as RunConfig;
  if (merged === null || typeof merged !== 'object' || Array.isArray(merged)) throw new RunConfigError([{ path: '(root)', message: 'run config must be an object with ops and execution' }]);
  for (const k of Object.keys(merged)) if (k !== 'ops' && k !== 'execution') issues.push({ path: '(root)', message: unknownKeyMessage(k, ['ops', 'execution']) });
  const { opConfig, issues: opIssues } = resolveOpConfig(job, merged);
  issues.push(...opIssues);
  let executorConfig: unknown = undefined;
  const rawExec = mergeConfig(executorDef.presetConfig, ignoreExecution ? undefined : merged.execution?.config);
  if (executorDef.configSchema) {
    const r = executorDef.configSchema.safeParse(rawExec ?? {});
    if (r.success) executorConfig = r.data;
    else issues.push(...configIssues(executorDef.configSchema, r.error, 'execution.config'));
    issues.push(...strayKeys(executorDef.configSchema, rawExec, 'execution.config'));
  } else if (rawExec !== undefined) {
    executorConfig = rawExec;
  }
  if (issues.length > 0) throw new RunConfigError(issues);
  return { opConfig, executorConfig, runConfig: merged };
}

/** Parses each op's config from the run config; issues name the path. */
export function resolveOpConfig(job: JobSpec, runConfig: RunConfig): { opConfig: Map<string, unknown>; issues: { path: string; message: string }[] } {
  const issues: { path: string; message: string }[] = [];
  const ops = new Map(job.steps.map((s) => [s.op.name, s.op]));
  const opConfig = new Map<string, unknown>();
  const givenOps = (runConfig.ops ?? {}) as Record<string, { config?: unknown }>;
  for (const name of Object.keys(givenOps)) {
    if (!ops.has(name)) issues.push({ path: `ops.${name}`, message: `job ${job.name} has no op ${name} (ops: ${[...ops.keys()].join(', ')})` });
  }
  for (const [name, op] of ops) {
    const raw = givenOps[name]?.config;
    if (!op.configSchema) {
      if (raw !== undefined) issues.push({ path: `ops.${name}.config`, message: `op ${name} takes no config` });
      continue;
    }
    const r = op.configSchema.safeParse(raw);
    if (r.success) opConfig.set(name, r.data);
    else issues.push(...configIssues(op.configSchema, r.error, `ops.${name}.config`));
    // A key a plain z.object drops would silently give the default: refused too.
    issues.push(...strayKeys(op.configSchema, raw, `ops.${name}.config`));
  }
  return { opConfig, issues };
}
