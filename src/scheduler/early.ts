/**
 * Results put early: a running task may put, on its own worker, the value of
 * a task that takes its result (TaskContext.earlyResult), before it ends.
 * The cluster executor streams a step's dynamic outputs this way: each item
 * is put as the pick task that would take it out of the step's result, and
 * the steps mapped over it start while the step still runs.
 *
 * The worker says so (`early`) before the task's events that announce the
 * item, so a task submitted after those events finds the record here. A
 * task submitted while the putting task runs, that depends on it and has the
 * key put, starts in memory on that worker instead of waiting (claimEarly);
 * one computed again later (its holder died) takes a value put anew by a
 * rerun of the task it waits on. Values nobody claimed stay claimable while
 * the putting task's result is held (a fan-out step that emits thousands of
 * items fast ends before most of their copies are submitted, and a pick
 * computed from its result would decode all of it); they are freed on the
 * worker when that task leaves its worker without a result, when its result
 * is released or lost (core.ts, dropEarly), and go with their worker.
 */
import { addHolder, type TaskState, type WorkerRecord } from './task-state.ts';
import type { SchedulerCore } from './core.ts';
import { toMemory } from './transitions.ts';

/** Worker `w` holds `keys` (sizes `nbytes`), put by the tasks running under `runs`. */
export function earlyResults(s: SchedulerCore, w: WorkerRecord, parents: readonly string[], runs: ArrayLike<number>, keys: readonly string[], nbytes: ArrayLike<number>): void {
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const parent = s.byRun.get(runs[i] as number);
    // Its task has ended, moved or is not this worker's: the value is dropped there.
    if (!parent || parent.key !== parents[i] || parent.flight?.worker !== w) {
      s.outbox.key(w.id, 'free', key);
      continue;
    }
    const n = nbytes[i] ?? 0;
    const ts = s.tasks.get(key);
    if (ts) {
      // Waiting on the task that put it (computed again after its holder died): in memory now.
      if (ts.state === 'waiting' && ts.deps.includes(parent)) hold(s, ts, w, n);
      // Sent to this worker as the value was put (the messages crossed): the worker reports it done from that value.
      else if (ts.state === 'processing' && ts.flight?.worker === w) continue;
      else if (!(ts.state === 'memory' && ts.whoHas.includes(w))) s.outbox.key(w.id, 'free', key);
      continue;
    }
    // Put before by another run of it: that value stands.
    if (s.early.has(key)) {
      if (s.early.get(key)?.worker !== w) s.outbox.key(w.id, 'free', key);
      continue;
    }
    s.early.set(key, { parent, worker: w, nbytes: n });
    const list = s.earlyOf.get(parent);
    if (list) list.push(key);
    else s.earlyOf.set(parent, [key]);
  }
}

/** A task just admitted whose value a task it depends on put early: in memory now, on that worker. */
export function claimEarly(s: SchedulerCore, ts: TaskState): boolean {
  const e = s.early.get(ts.key);
  if (!e || !ts.deps.includes(e.parent)) return false;
  s.early.delete(ts.key);
  hold(s, ts, e.worker, e.nbytes);
  return true;
}

function hold(s: SchedulerCore, ts: TaskState, w: WorkerRecord, nbytes: number): void {
  addHolder(ts, w);
  w.stored++;
  w.storedBytes += nbytes;
  ts.nbytes = nbytes;
  toMemory(s, ts);
}
