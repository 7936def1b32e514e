/**
 * What a step process needs to run one attempt of one step, besides its
 * inputs (those come from the run's coordinator once it has connected):
 * Dagster's `execute_step` arguments. Handlers pass it to `weft step` in one
 * environment variable or argument, as compressed JSON.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { RunConfig } from '../definitions.ts';

export interface StepSpec {
  runId: string;
  /** file: URL of the code location, as the step process sees it. */
  module: string;
  jobName: string;
  stepKey: string;
  /** 0 for the first attempt. */
  attempt: number;
  /** false: a failure is final whatever the op's retry policy (the executor's retries are disabled). */
  retries: boolean;
  /** The run config's `ops` section: each op's config, checked again in the step. */
  runConfig: RunConfig;
  /** The run's op selection: the step's process cuts the job to it as the launcher did. */
  opSelection?: string[];
}

/** A step spec with where and how to report: what `weft step` runs. */
export interface StepArgs {
  spec: StepSpec;
  /** ws://HOST:PORT of the run's coordinator. */
  coordinator: string;
  /** This attempt's token (see coordinator.ts): lets exactly this attempt connect, once. */
  token: string;
}

/** The environment variable `weft step` reads its arguments from. */
export const STEP_ARGS_ENV = 'WEFT_STEP_ARGS';

export function packStepArgs(args: StepArgs): string {
  return deflateRawSync(JSON.stringify(args)).toString('base64url');
}

/** The JSON inside a packed argument (checked by the caller). */
export function unpackStepArgs(packed: string): unknown {
  try {
    return JSON.parse(inflateRawSync(Buffer.from(packed, 'base64url')).toString('utf8'));
  } catch (err) {
    throw new Error(`the step arguments are not what weft packs (compressed JSON in base64url): ${(err as Error).message}`, { cause: err });
  }
}
