/**
 * `weftjs/runs`: runs that outlive their launcher. The instance (WEFT_HOME:
 * run storage and the output store), re-execution, the run queue, cancel.
 * See docs/runs.md.
 */
export { Instance, weftHome, CONFIG_FILE, type InstanceOptions } from './instance.ts';
export type { InstanceConfig, TagConcurrencyLimit } from './config.ts';
export type { RunStorage } from './storage.ts';
export { PARENT_RUN_TAG, ROOT_RUN_TAG, OUTPUTS_TAG, type RunRecord, type RunFilter, type StoredEvent, type NewRun } from './records.ts';
export { RUN_STATUSES, FINISHED_STATUSES, IN_PROGRESS_STATUSES, statusAfter, type RunStatus } from './status.ts';
export { reexecute, planReexecution, type ReexecuteOptions, type ReexecutionPlan } from './reexecute.ts';
export { stepOutcomes, type StepOutcome } from './outcomes.ts';
export { cancelRun, type CancelOutcome } from './cancel.ts';
export { submitRun, submitReexecution, runsToStart, REEXECUTE_TAG, type Submission } from './queue.ts';
export { failStaleRuns } from './monitor.ts';
export { RunStorageError, SchemaVersionError, RunNotFoundError, ReexecutionError } from './errors.ts';
export { FsOutputStore, OutputStoreError, type OutputStore, type OutputRef } from '../jobs/outputs.ts';
export type { RunRecorder, RecordedRun, RunStart } from '../jobs/recording.ts';
