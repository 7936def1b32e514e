/**
 * Definitions: the jobs, assets and default executor of a code location (a
 * module whose default export is a Definitions object). Steps that run in
 * other processes rebuild their job from it.
 */
import { fileURLToPath } from 'node:url';
import type { JobDefinition} from './definitions.ts';
import { AssetJobSpec, type AssetDefinition } from './definitions.ts';
import { DefinitionError } from './errors.ts';
import type { ExecutorDefinition } from './executor.ts';
import type { ExecuteOptions, JobExecutionResult } from './run.ts';
import { WEFT_ROOT } from '../util/self.ts';

const BRAND = Symbol.for('weft.Definitions');

/**
 * The default executor, registered by executors/default.ts when it loads.
 * Not imported here: step processes load Definitions, and must not load
 * every executor (and their dependencies) with it.
 */
let defaultExecutor: ExecutorDefinition | null = null;

export function registerDefaultExecutor(e: ExecutorDefinition): void {
  defaultExecutor = e;
}

export interface DefinitionsOptions {
  assets?: AssetDefinition[];
  jobs?: (JobDefinition | AssetJobSpec)[];
  /** The executor of jobs that do not name their own (default: multiOrInProcessExecutor). */
  executor?: ExecutorDefinition;
  /** file: URL of the module defining these Definitions (default: found from the call site). */
  location?: string;
}

export class Definitions {
  readonly [BRAND] = true;
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
    return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[BRAND] === true;
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
    const e = job.executorDef ?? this.executor ?? defaultExecutor;
    if (!e) throw new DefinitionError(`job ${job.name} names no executor and the default one is not loaded; import it from 'weftjs'`);
    return e;
  }

  /** Runs a job with its executor (see executorFor). */
  async executeJob(name: string, opts: ExecuteOptions = {}): Promise<JobExecutionResult> {
    const job = this.getJob(name);
    if (!defaultExecutor) await import('./executors/default.ts');
    const { executeJob } = await import('./run.ts');
    return executeJob(job, this.executorFor(job), this.location ? { module: this.location, jobName: name } : null, opts);
  }
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
