/** Where each step of a run stands, from the run's events: what re-execution and `weft runs show` read. */
import type { RunEvent } from '../jobs/events.ts';

export type StepOutcome = 'succeeded' | 'failed' | 'skipped' | 'interrupted' | 'not-run';

export function stepOutcomes(stepKeys: readonly string[], events: readonly RunEvent[]): Map<string, StepOutcome> {
  const out = new Map<string, StepOutcome>(stepKeys.map((k) => [k, 'not-run']));
  for (const ev of events) {
    const k = ev.stepKey;
    if (k === null || !out.has(k)) continue;
    if (ev.type === 'STEP_START' || ev.type === 'STEP_UP_FOR_RETRY' || ev.type === 'STEP_RESTARTED') out.set(k, 'interrupted');
    else if (ev.type === 'STEP_SUCCESS') out.set(k, 'succeeded');
    else if (ev.type === 'STEP_FAILURE') out.set(k, 'failed');
    else if (ev.type === 'STEP_SKIPPED') out.set(k, 'skipped');
  }
  return out;
}

