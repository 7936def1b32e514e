/**
 * A run's status and the one table of how it may change. As in Dagster, the
 * status follows the run's own events: storing RUN_START moves a STARTING
 * run to STARTED, and so on. An event that the table does not allow from the
 * current status (a late RUN_SUCCESS after the run monitor declared the run
 * failed) is kept in the event log but leaves the status as it is.
 */
import type { RunEventType } from '../jobs/events.ts';

export const RUN_STATUSES = ['QUEUED', 'STARTING', 'STARTED', 'SUCCESS', 'FAILURE', 'CANCELING', 'CANCELED'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Statuses a run never leaves. */
export const FINISHED_STATUSES: readonly RunStatus[] = ['SUCCESS', 'FAILURE', 'CANCELED'];
/** Statuses of a run that is under way: its launcher should be alive. */
export const IN_PROGRESS_STATUSES: readonly RunStatus[] = ['STARTING', 'STARTED', 'CANCELING'];

/** Per run event: the status it leads to, and the statuses it may come from. */
const TRANSITIONS: Partial<Record<RunEventType, { to: RunStatus; from: readonly RunStatus[] }>> = {
  RUN_ENQUEUED: { to: 'QUEUED', from: [] },
  RUN_STARTING: { to: 'STARTING', from: ['QUEUED'] },
  RUN_START: { to: 'STARTED', from: ['STARTING'] },
  RUN_SUCCESS: { to: 'SUCCESS', from: ['STARTED'] },
  RUN_FAILURE: { to: 'FAILURE', from: ['QUEUED', 'STARTING', 'STARTED', 'CANCELING'] },
  RUN_CANCELING: { to: 'CANCELING', from: ['STARTING', 'STARTED'] },
  RUN_CANCELED: { to: 'CANCELED', from: ['QUEUED', 'STARTING', 'STARTED', 'CANCELING'] },
};

/** The status a run with status `current` (null: not stored yet) has after an event of `type`, or null if it stays. */
export function statusAfter(current: RunStatus | null, type: RunEventType): RunStatus | null {
  const t = TRANSITIONS[type];
  if (!t) return null;
  if (current === null) return type === 'RUN_ENQUEUED' || type === 'RUN_STARTING' ? t.to : null;
  return t.from.includes(current) ? t.to : null;
}

/** The statuses from which an event of `type` moves a run (for a compare-and-set in storage). */
export function statusesBefore(type: RunEventType): readonly RunStatus[] {
  return TRANSITIONS[type]?.from ?? [];
}

export function isFinished(s: RunStatus): boolean {
  return FINISHED_STATUSES.includes(s);
}
