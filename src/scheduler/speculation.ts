/**
 * Chain speculation: while a task's only dependent waits for nothing else
 * and would run on the same worker anyway, it is sent along at once and the
 * worker starts it the moment the result exists, with no round trip through
 * the scheduler. A task that leaves its worker without a result takes its
 * speculative dependents back with it.
 */
import { type WorkerRecord, hasRestrictions, type TaskState } from './task-state.ts';
import { type SchedulerCore, setState, missingInputs } from './core.ts';

/** The dependent to send along with `ts` to `w`, if any (see above). */
export function speculativeDependent(s: SchedulerCore, ts: TaskState, w: WorkerRecord): TaskState | null {
  if (ts.dependents.length !== 1) return null;
  const d = ts.dependents[0] as TaskState;
  if (d.state !== 'waiting' || d.waitingOn !== 1 || hasRestrictions(d) || d.fn === null) return null;
  for (const dep of d.deps) if (dep !== ts && !(dep.state === 'memory' && dep.whoHas.includes(w))) return null;
  return d;
}

/** `ts` left worker `w` without a result: the dependents sent along with it wait again, for a result that will not come from there. */
export function takeBackSpeculative(s: SchedulerCore, ts: TaskState, w: WorkerRecord): void {
  let t: TaskState = ts;
  while (t.dependents.length === 1) {
    const d = t.dependents[0] as TaskState;
    if (d.state !== 'processing' || d.processingOn !== w) break;
    w.processing--;
    w.occupancy = Math.max(0, w.occupancy - d.expected);
    d.processingOn = null;
    s.byRun.delete(d.run);
    d.executing = false;
    s.outbox.key(w.id, 'free', d.key);
    setState(s, d, 'waiting');
    d.waitingOn = missingInputs(d);
    t = d;
  }
}
