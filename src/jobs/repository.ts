/**
 * Definitions: the jobs, assets and default executor of a code location (a
 * module whose default export is a Definitions object). Steps that run in
 * other processes rebuild their job from it.
 *
 * The top of the job layer: running a job of a Definitions needs the run and
 * the default executor, which load with it (a few milliseconds). The step
 * side, below, sees a code location's jobs through location.ts.
 */
import { fileURLToPath } from 'node:url';
import type { AssetDefinition } from './definitions.ts';
import { DefinitionError } from './errors.ts';
import type { ExecutorDefinition } from './executor.ts';
import { multiOrInProcessExecutor } from './executors/default.ts';
import { AssetJobSpec, type JobDefinition } from './job.ts';
import { DEFINITIONS_BRAND, isDefinitions, loadDefinitions as loadLocation } from './location.ts';
import { executeJob, type ExecuteOptions, type JobExecutionResult } from './run.ts';
import { WEFT_ROOT } from '../util/self.ts';

export interface DefinitionsOptions {
  assets?: AssetDefinition[];
  jobs?: (JobDefinition | AssetJobSpec)[];
  /** The executor of jobs that do not name their own (default: multiOrInProcessExecutor). */
  executor?: ExecutorDefinition;
  /** file: URL of the module defining these Definitions (default: found from the call site). */
  location?: string;
}

export class Definitions {
  readonly [DEFINITIONS_BRAND] = true;
  readonly assets: readonly AssetDefinition[];
  readonly executor: ExecutorDefinition | undefined;
  /** The module these Definitions come from, if known: other processes import it to rebuild jobs. */
  location: string | null;
  private readonly jobs = new Map<string, JobDefinition>();

  constructor(opts: DefinitionsOptions = {}) {
    this.assets = opts.assets ?? [];
    this.executor = opts.executor;
    this.location = opts.location ?? callerModule();
    const assetNames = new Set<string>();
    for (const a of this.assets) {
      if (assetNames.has(a.name)) throw new DefinitionError(`two assets are named ${a.name}`);
      assetNames.add(a.name);
    }
    for (const j of opts.jobs ?? []) {
      const resolved = j instanceof AssetJobSpec ? j.resolve(this.assets) : j;
      if (this.jobs.has(resolved.name)) throw new DefinitionError(`two jobs are named ${resolved.name}`);
      this.jobs.set(resolved.name, resolved);
    }
  }

  /** Whether a value is a Definitions object (from any copy of weft). */
  static isDefinitions(v: unknown): v is Definitions {
    return isDefinitions(v);
  }

  get jobNames(): string[] {
    return [...this.jobs.keys()];
  }

  findJob(name: string): JobDefinition | undefined {
    return this.jobs.get(name);
  }

  getJob(name: string): JobDefinition {
    const j = this.jobs.get(name);
    if (!j) throw new DefinitionError(`no job ${name} in these Definitions (jobs: ${this.jobNames.join(', ') || 'none'})`);
    return j;
  }

  /** The executor that runs a job: its own, else these Definitions', else the default. */
  executorFor(job: JobDefinition): ExecutorDefinition {
    return job.executorDef ?? this.executor ?? (multiOrInProcessExecutor as ExecutorDefinition);
  }

  /** Runs a job with its executor (see executorFor). */
  async executeJob(name: string, opts: ExecuteOptions = {}): Promise<JobExecutionResult> {
    const job = this.getJob(name);
    return executeJob(job, this.executorFor(job), this.location ? { module: this.location, jobName: name } : null, opts);
  }
}

/** Imports a module and returns its Definitions: the default export, or the one exported Definitions. */
export async function loadDefinitions(spec: string): Promise<Definitions> {
  return (await loadLocation(spec)) as Definitions;
}

/** The file: URL of the module that called into here (first stack frame outside src/jobs). */
function callerModule(): string | null {
  // Frames inside weft (its sources, or its package's chunks) are skipped.
  const here = WEFT_ROOT.href;
  for (const line of (new Error().stack ?? '').split('\n').slice(1)) {
    const m = /(file:\/\/[^\s)]+?):\d+:\d+\)?\s*$/.exec(line) ?? /\((\/[^\s)]+?):\d+:\d+\)\s*$/.exec(line) ?? /at (\/[^\s)]+?):\d+:\d+\s*$/.exec(line);
    if (!m?.[1]) continue;
    const url = m[1].startsWith('file:') ? m[1] : `file://${m[1]}`;
    if (url.startsWith(here)) continue;
    try {
      fileURLToPath(url);
      return url;
    } catch {
      continue;
    }
  }
  return null;
}
