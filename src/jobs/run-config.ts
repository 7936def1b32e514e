/** Run config: validated against the ops' schemas and the executor's, errors naming the path. */
import type { z } from 'zod';
import type { JobDefinition, RunConfig } from './definitions.ts';
import { RunConfigError } from './errors.ts';
import { mergeConfig, type ExecutorDefinition } from './executor.ts';

/** Validates run config against the job's op schemas and the executor's; errors name the path. */
export function resolveRunConfig(job: JobDefinition, executorDef: ExecutorDefinition, given: RunConfig | undefined, ignoreExecution = false): { opConfig: Map<string, unknown>; executorConfig: unknown; runConfig: RunConfig } {
  const issues: { path: string; message: string }[] = [];
  const merged = mergeConfig(job.defaultRunConfig, given ?? {}) as RunConfig;
  if (merged === null || typeof merged !== 'object' || Array.isArray(merged)) throw new RunConfigError([{ path: '(root)', message: 'run config must be an object with ops and execution' }]);
  for (const k of Object.keys(merged)) if (k !== 'ops' && k !== 'execution') issues.push({ path: k, message: 'unknown key (expected ops or execution)' });
  const { opConfig, issues: opIssues } = resolveOpConfig(job, merged);
  issues.push(...opIssues);
  let executorConfig: unknown = undefined;
  const rawExec = mergeConfig(executorDef.presetConfig, ignoreExecution ? undefined : merged.execution?.config);
  if (executorDef.configSchema) {
    const r = executorDef.configSchema.safeParse(rawExec ?? {});
    if (r.success) executorConfig = r.data;
    else issues.push(...zodIssues('execution.config', r.error));
  } else if (rawExec !== undefined) {
    executorConfig = rawExec;
  }
  if (issues.length > 0) throw new RunConfigError(issues);
  return { opConfig, executorConfig, runConfig: merged };
}

/** Parses each op's config from the run config; issues name the path. */
export function resolveOpConfig(job: JobDefinition, runConfig: RunConfig): { opConfig: Map<string, unknown>; issues: { path: string; message: string }[] } {
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
    else issues.push(...zodIssues(`ops.${name}.config`, r.error));
  }
  return { opConfig, issues };
}

interface Issue {
  path: PropertyKey[];
  message: string;
  code?: string;
  /** invalid_union: the issues of each alternative. */
  errors?: Issue[][];
}

function zodIssues(prefix: string, err: z.ZodError): { path: string; message: string }[] {
  return flatten(err.issues as Issue[], []).map((i) => ({ path: [prefix, ...i.path.map(String)].join('.'), message: i.message }));
}

/**
 * For a value matching none of a union's alternatives, the issues of the
 * alternative it came closest to (the deepest path): `multiprocess.maxConcurrent`
 * rather than "invalid input".
 */
function flatten(issues: Issue[], base: PropertyKey[]): Issue[] {
  const out: Issue[] = [];
  for (const i of issues) {
    const path = [...base, ...i.path];
    if (i.code === 'invalid_union' && i.errors && i.errors.length > 0) {
      const depth = (branch: Issue[]): number => Math.max(...branch.map((b) => b.path.length));
      const best = [...i.errors].sort((a, b) => depth(b) - depth(a))[0] as Issue[];
      if (depth(best) > 0) {
        out.push(...flatten(best, path));
        continue;
      }
    }
    out.push({ ...i, path });
  }
  return out;
}

