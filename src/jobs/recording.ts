/**
 * The seam between running a job and keeping a record of it. The job layer
 * says what it needs here; an instance (runs/instance.ts), above the
 * executors, provides it: run storage for the run and its events, and an
 * output store that outlives the run.
 */
import type { RunConfig } from './definitions.ts';
import type { RunEvent } from './events.ts';
import type { OutputStore } from './outputs.ts';

/** What a run is, as it starts: enough to launch it again with nothing else. */
export interface RunStart {
  runId: string;
  job: string;
  /** file: URL of the code location, null for a job that is not in one. */
  location: string | null;
  runConfig: RunConfig;
  inputValues: Record<string, unknown>;
  tags: Record<string, string>;
  executor: string;
  /** A re-execution: the run it re-executes, and the steps it runs. */
  parentRunId: string | null;
  rootRunId: string | null;
  stepKeys: readonly string[] | null;
  /** Whether its outputs go to an output store (else they live in the launcher's memory: it cannot be re-executed). */
  outputsStored: boolean;
}

export interface RunRecorder {
  /** The store every run recorded here keeps its outputs in (unless the launch names another). */
  readonly outputStore: OutputStore;
  /**
   * Records the start of a run (or takes over a queued one the daemon
   * claimed). `cancel` is called when someone asks storage to cancel it.
   */
  startRun(run: RunStart, cancel: (reason: string) => void): Promise<RecordedRun>;
}

export interface RecordedRun {
  /** Every event of the run, in order; written in batches. */
  event(ev: RunEvent): void;
  /** Resolves once every event is stored (and the launcher stops its heartbeat). */
  finish(): Promise<void>;
}
