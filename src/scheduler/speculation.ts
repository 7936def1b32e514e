/**
 * Chain speculation: while a task's only dependent waits for nothing else
 * and would run on the same worker anyway, it is sent along at once and the
 * worker starts it the moment the result exists, with no round trip through
 * the scheduler. A task that leaves its worker without a result takes its
 * speculative dependents back with it.
 */
import { type WorkerRecord, dependentCount, hasRestrictions, type TaskState } from './task-state.ts';
import { type SchedulerCore, setState, missingInputs, detach } from './core.ts';

/** The dependent to send along with `ts` to `w`, if any (see above). */
export function speculativeDependent(s: SchedulerCore, ts: TaskState, w: WorkerRecord): TaskState | null {
  const d = ts.dependent;
  if (d === null || dependentCount(ts) !== 1) return null;
  if (d.state !== 'waiting' || d.waitingOn !== 1 || hasRestrictions(d) || d.fn === null) return null;
  for (const dep of d.deps) if (dep !== ts && !(dep.state === 'memory' && dep.whoHas.includes(w))) return null;
  return d;
}

/** `ts` left worker `w` without a result: the dependents sent along with it wait again, for a result that will not come from there. */
export function takeBackSpeculative(s: SchedulerCore, ts: TaskState, w: WorkerRecord): void {
  let t: TaskState = ts;
  while (t.dependent !== null && dependentCount(t) === 1) {
    const d = t.dependent;
    if (d.state !== 'processing' || d.flight?.worker !== w) break;
    detach(s, d);
    s.outbox.key(w.id, 'free', d.key);
    setState(s, d, 'waiting');
    d.waitingOn = missingInputs(d);
    t = d;
  }
}
