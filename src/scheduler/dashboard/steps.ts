/**
 * A step's row on the runs page from the run's events, one way for both
 * sources: the cluster executor's events seen on the scheduler (feed.ts) and
 * run storage's (runs/dashboard-source.ts). The state is the step's last
 * step event; a new attempt starts its clock again.
 */
import type { StepView } from './snapshot.ts';

/** What the page needs of an event. */
export interface StepEventLike {
  type: string;
  stepKey: string | null;
  timestamp: number;
  attempt?: number | undefined;
}

/** Whether an event of this type moves a step's row (outputs do not). */
export function isStepState(type: string): boolean {
  return type.startsWith('STEP_') && type !== 'STEP_OUTPUT';
}

/** Moves the row of the event's step, adding it (at the end) if it has none. */
export function applyStepEvent(steps: Map<string, StepView>, ev: StepEventLike): void {
  if (ev.stepKey === null || !isStepState(ev.type)) return;
  let step = steps.get(ev.stepKey);
  if (!step) steps.set(ev.stepKey, (step = { key: ev.stepKey, state: ev.type, start: null, end: null, attempt: 0 }));
  step.state = ev.type;
  step.attempt = ev.attempt ?? step.attempt;
  if (ev.type === 'STEP_START' || ev.type === 'STEP_RESTARTED') {
    step.start = ev.timestamp;
    step.end = null;
  } else if (ev.type !== 'STEP_UP_FOR_RETRY') step.end = ev.timestamp;
}
