/**
 * How the cluster executor names a run's tasks: one per step, and one per
 * output of a step that keeps a record of its outputs (named outputs, or
 * dynamic ones) taken by a later step. Shared by the executor, which submits
 * them, and the step task, which puts a dynamic output's items early under
 * their pick tasks' keys (see scheduler/early.ts).
 */
import type { OpDefinition } from '../definitions.ts';

export function taskKey(runId: string, step: string): string {
  return `weft-run-${runId}/${step}`;
}

/** The task taking output `output` (an item: `result[k]`) out of the record of step `step`. */
export function pickKey(runId: string, step: string, output: string): string {
  return `${taskKey(runId, step)}#${output}`;
}

/** Whether a step of this op returns a record of its outputs (by name) rather than its one output. */
export function keepsRecord(op: Pick<OpDefinition, 'multipleOutputs' | 'dynamicOutputs'>): boolean {
  return op.multipleOutputs || op.dynamicOutputs.size > 0;
}
