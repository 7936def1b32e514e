/** Loading a code location: the module whose default export is a Definitions object. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { JobSpec } from './definitions.ts';
import { DefinitionError, JobReconstructionError } from './errors.ts';
import type { CodeLocation } from './executor.ts';
import { importUserModule } from '../util/user-modules.ts';

/** Marks a Definitions object (repository.ts), from any copy of weft a code location imports. */
export const DEFINITIONS_BRAND = Symbol.for('weft.Definitions');

/**
 * What loading a code location gives the step side and the run: its jobs as
 * data. A Definitions object is one; this module does not import it, as
 * Definitions sit above the executors that load code locations.
 */
export interface CodeLocationJobs {
  /** The module these Definitions come from, if known: other processes import it to rebuild jobs. */
  location: string | null;
  readonly jobNames: string[];
  findJob(name: string): JobSpec | undefined;
  getJob(name: string): JobSpec;
}

/** Whether a value is a Definitions object (from any copy of weft). */
export function isDefinitions(v: unknown): v is CodeLocationJobs {
  return typeof v === 'object' && v !== null && (v as Record<symbol, unknown>)[DEFINITIONS_BRAND] === true;
}

/** A module path or file: URL as a file: URL (paths resolve against the working directory). */
export function moduleUrl(spec: string): string {
  return spec.startsWith('file:') ? spec : pathToFileURL(resolve(spec)).href;
}

/** Imports a module and returns its Definitions: the default export, or the one exported Definitions. */
export async function loadDefinitions(spec: string): Promise<CodeLocationJobs> {
  const url = moduleUrl(spec);
  let mod: Record<string, unknown>;
  try {
    mod = await importUserModule(url);
  } catch (err) {
    throw new DefinitionError(`cannot import ${spec}: ${(err as Error).message}`);
  }
  const defs = definitionsOf(mod, spec);
  defs.location = url;
  return defs;
}

/** The Definitions of an imported module: its default export, or its one exported Definitions. */
export function definitionsOf(mod: Record<string, unknown>, spec: string): CodeLocationJobs {
  let defs: CodeLocationJobs | undefined;
  const main = mod['default'];
  if (isDefinitions(main)) defs = main;
  else {
    const found = Object.values(mod).filter(isDefinitions);
    if (found.length === 1) defs = found[0];
    else if (found.length > 1) throw new DefinitionError(`${spec} exports ${found.length} Definitions objects; export one as the default`);
  }
  if (!defs) throw new DefinitionError(`${spec} has no Definitions: make \`export default new Definitions({ jobs, assets })\` its default export`);
  return defs;
}

/**
 * A fingerprint of a code location's module file (null if it cannot be
 * read): a process that imported an older version of the file can tell, as
 * modules are imported once per process.
 */
export function codeVersion(url: string): string | null {
  try {
    return createHash('sha1').update(readFileSync(fileURLToPath(url))).digest('hex').slice(0, 16);
  } catch {
    return null;
  }
}

/** Checks that another process can rebuild the job from its code location. */
export async function checkReconstructable(job: JobSpec, location: CodeLocation | null): Promise<void> {
  if (!location) {
    throw new JobReconstructionError(`job ${job.name} cannot run in other processes: weft does not know the module that defines it. Run it with 'weft run MODULE --job ${job.name}', or through a Definitions object that is the default export of its module.`);
  }
  let defs: CodeLocationJobs;
  try {
    defs = await loadDefinitions(location.module);
  } catch (err) {
    throw new JobReconstructionError(`job ${job.name} cannot be rebuilt in another process: ${(err as Error).message}. A job that runs in other processes must be defined at the top level of its module (not inside a function) and listed in the module's default-exported Definitions.`);
  }
  const found = defs.findJob(location.jobName);
  const sameSteps = found && found.steps.length === job.steps.length && found.steps.every((s, i) => s.key === job.steps[i]?.key);
  if (!sameSteps) {
    throw new JobReconstructionError(`job ${job.name} cannot be rebuilt from ${location.module}: its Definitions ${found ? 'define a different job under that name' : `have no job ${location.jobName}`}. A job that runs in other processes must be defined at the top level of its module (not inside a function) and listed in the module's default-exported Definitions.`);
  }
}
