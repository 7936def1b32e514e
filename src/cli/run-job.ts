/**
 * `weft run` and `weft list`: run a job of a code location with its executor,
 * or list what a code location defines.
 */
import { readFileSync } from 'node:fs';
import { moduleUrl } from '../jobs/location.ts';
import { loadDefinitions } from '../jobs/repository.ts';
import { mergeConfig, type ExecutorDefinition } from '../jobs/executor.ts';
import { executeJob, type ExecuteOptions } from '../jobs/run.ts';
import type { RunConfig } from '../jobs/definitions.ts';
import { ConfigError } from '../errors.ts';
import { Instance } from '../runs/instance.ts';
import { MissingPackageError } from '../util/optional.ts';
import type { LogLevel } from '../util/log.ts';
import { showRun } from './show-run.ts';

export interface RunOptions {
  module: string;
  job: string;
  configFile?: string | undefined;
  json: boolean;
  /** Run on this cluster with the cluster executor, whatever executor the job names. */
  cluster?: { address: string; token?: string };
  /** Step LOG events below it are not shown (default: all). */
  logLevel?: LogLevel;
  /** Run tags, over the job's. */
  tags?: Record<string, string>;
  /** Only these steps (Dagster's op selection syntax). */
  opSelection?: string[];
}

export function readRunConfig(file: string | undefined): RunConfig | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--config: cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as RunConfig;
  } catch (err) {
    throw new ConfigError(`--config: ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Runs the job, recorded in the instance; resolves with the process exit code (0 success, 1 failure, 130 canceled). */
export async function runJobCommand(opts: RunOptions): Promise<number> {
  const instance = await openInstanceOrSay();
  instance?.prepareToLaunch();
  try {
    const defs = await loadDefinitions(opts.module);
    const job = defs.findJob(opts.job);
    if (!job) throw new ConfigError(`--job: ${opts.module} has no job ${opts.job} (jobs: ${defs.jobNames.join(', ') || 'none'})`);
    let runConfig = readRunConfig(opts.configFile);
    // The command prints events and never reads outputs: the cluster executor need not fetch them (a run config can still say so).
    const onCluster = opts.cluster !== undefined || defs.executorFor(job).name === 'cluster';
    if (onCluster) runConfig = mergeConfig({ execution: { config: { fetchOutputs: false } } }, runConfig) as RunConfig;
    return await showRun(opts, job.steps.length, async (shown) => {
      const execOpts: ExecuteOptions = { ...shown, ...(instance ? { instance } : {}), ...(runConfig ? { runConfig } : {}), ...(opts.tags ? { tags: opts.tags } : {}), ...(opts.opSelection ? { opSelection: opts.opSelection } : {}) };
      if (!opts.cluster) return defs.executeJob(opts.job, execOpts);
      const { clusterExecutor } = await import('../jobs/executors/cluster.ts');
      const executorDef = clusterExecutor.configured({ cluster: { existing: opts.cluster } });
      return executeJob(job, executorDef as ExecutorDefinition, { module: defs.location ?? moduleUrl(opts.module), jobName: opts.job }, execOpts);
    });
  } finally {
    await instance?.close();
  }
}

/**
 * The instance in WEFT_HOME, or null when run storage's package is not
 * installed (the runtime alone): the run goes on unrecorded, and says so.
 */
async function openInstanceOrSay(): Promise<Instance | null> {
  try {
    return await Instance.open();
  } catch (err) {
    if (!(err instanceof MissingPackageError)) throw err;
    process.stderr.write(`weft: this run is not recorded: ${err.message}\n`);
    return null;
  }
}

export async function listCommand(module: string, json: boolean): Promise<void> {
  const defs = await loadDefinitions(module);
  const jobs = defs.jobNames.map((name) => {
    const j = defs.getJob(name);
    return { name, executor: defs.executorFor(j).name, steps: j.steps.length, ...(j.inputs.length > 0 ? { inputs: j.inputs } : {}) };
  });
  const assets = defs.assets.map((a) => ({ name: a.name, deps: [...a.deps] }));
  if (json) {
    console.log(JSON.stringify({ jobs, assets }));
    return;
  }
  console.log('Jobs:');
  for (const j of jobs) console.log(`  ${j.name.padEnd(24)} executor ${j.executor.padEnd(20)} ${j.steps} step(s)${j.inputs ? `, inputs: ${j.inputs.join(', ')}` : ''}`);
  if (jobs.length === 0) console.log('  (none)');
  console.log('Assets:');
  for (const a of assets) console.log(`  ${a.name.padEnd(24)} ${a.deps.length > 0 ? `from ${a.deps.join(', ')}` : '(no upstream)'}`);
  if (assets.length === 0) console.log('  (none)');
}
