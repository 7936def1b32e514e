/**
 * A task's life after intake: waiting for inputs, ready, in memory, lost,
 * erred, released and forgotten. Every state change goes through setState
 * (core.ts); these functions decide which.
 */
import { type ClientRecord, type WorkerRecord, clearHolders, forEachWanter, hasRestrictions, isNeeded, needsDeps, type TaskState, dependentsOf, rareOf, hasLiveDependents, removeWanter, bytesOf } from './task-state.ts';
import { type SchedulerCore, setState, tellInMemory, addWant, missingInputs, detach, dropEarly, gone } from './core.ts';
import { takeBackSpeculative } from './speculation.ts';
import { isRootish, place } from './placement.ts';
import type { SerializedError } from '../errors.ts';

/**
 * Tasks released (or forgotten) per event at most: releasing a large graph
 * cascades through all of it, and the rest waits for a `continue` event so
 * that workers and clients are heard in between.
 */
const RELEASES_PER_EVENT = 16_384;

/** A client wants a key: tell it where the key stands, and compute it again if it was released. */
export function want(s: SchedulerCore, c: ClientRecord, ts: TaskState): void {
  addWant(s, c, ts);
  if (ts.state === 'memory') tellInMemory(s, c, ts, (ts.whoHas[0] as WorkerRecord).address);
  else if (ts.state === 'erred' && ts.rare?.error) s.outbox.push(c.id, { op: 'erred', key: ts.key, error: ts.rare.error });
  else if (ts.state === 'released' && isNeeded(ts)) ensureComputable(s, ts);
}

/** A task's data is now held somewhere: tell wanters, wake dependents. */
export function toMemory(s: SchedulerCore, ts: TaskState): void {
  setState(s, ts, 'memory');
  if (s.forgetful.wants > 0) letGoForgotten(s, ts);
  if (ts.wanter) {
    const address = (ts.whoHas[0] as WorkerRecord).address;
    // No closure per task on this hot path (forEachWanter would make one).
    tellInMemory(s, ts.wanter, ts, address);
    const more = ts.rare?.moreWanters;
    if (more) for (const c of more) tellInMemory(s, c, ts, address);
  }
  // The first dependent, then any others (see TaskState.dependent).
  const first = ts.dependent;
  if (first !== null) {
    if (first.state === 'waiting' && --first.waitingOn === 0) makeReady(s, first);
    const more = ts.rare?.moreDependents;
    if (more) for (const d of more) if (d.state === 'waiting' && --d.waitingOn === 0) makeReady(s, d);
  }
  if (!isNeeded(ts)) s.releaseQ.push(ts);
}

/**
 * A new (or recomputed) task starts waiting for its dependencies. Released
 * dependencies go on `released` when given (ensureComputable's own stack:
 * a long chain must not recurse once per link), else are made computable here.
 */
export function enterWaiting(s: SchedulerCore, ts: TaskState, released?: TaskState[]): void {
  let missing = 0;
  let failed: TaskState | null = null;
  for (const d of ts.deps) {
    if (d.state === 'erred') failed = d;
    else if (d.state !== 'memory') missing++;
  }
  if (failed) {
    markErred(s, ts, dependencyError(failed));
    return;
  }
  setState(s, ts, 'waiting');
  ts.waitingOn = missing;
  if (missing === 0) {
    makeReady(s, ts);
    return;
  }
  for (const d of ts.deps) {
    if (d.state !== 'released') continue;
    if (released) released.push(d);
    else ensureComputable(s, d);
  }
}

/** A released task is needed again: compute it (and whatever it needs). */
function ensureComputable(s: SchedulerCore, root: TaskState): void {
  const stack = [root];
  while (stack.length > 0) {
    const ts = stack.pop() as TaskState;
    if (ts.state !== 'released') continue;
    if (ts.fn === null) {
      markErred(s, ts, { name: 'DataLostError', message: `scattered data ${ts.key} was lost with the worker that held it; scatter it again` });
      continue;
    }
    enterWaiting(s, ts, stack);
  }
}

/** All dependencies are in memory: queue a root task, or place it now. */
export function makeReady(s: SchedulerCore, ts: TaskState): void {
  if (!hasRestrictions(ts) && isRootish(s, ts)) {
    setState(s, ts, 'queued');
    // An entry left from an earlier stay in the queue is skipped when popped (see nextQueued); both may be there.
    s.queue.push(ts);
    return;
  }
  place(s, ts);
}

/** Takes a processing task off its worker's books (the worker is told separately). */
export function detachFromWorker(s: SchedulerCore, ts: TaskState): void {
  const w = detach(s, ts);
  if (w) takeBackSpeculative(s, ts, w);
}

/** A task that was processing goes back to wait for (or recompute) its inputs. */
export function returnToWaiting(s: SchedulerCore, ts: TaskState): void {
  const missing = missingInputs(ts);
  if (missing === 0) {
    makeReady(s, ts);
    return;
  }
  setState(s, ts, 'waiting');
  ts.waitingOn = missing;
  for (const d of ts.deps) {
    if (d.state === 'erred') {
      markErred(s, ts, dependencyError(d));
      return;
    }
    if (d.state === 'released') ensureComputable(s, d);
  }
}

/** The last copy of a result is gone. Recompute it if anything still needs it. */
export function loseData(s: SchedulerCore, ts: TaskState): void {
  if (s.earlyOf.size > 0) dropEarly(s, ts);
  setState(s, ts, 'released');
  ts.nbytes = null;
  for (const d of dependentsOf(ts)) {
    // Counted afresh, not incremented: one taken back from a worker just now (speculation) already counts this loss.
    if (d.state === 'waiting') d.waitingOn = missingInputs(d);
    else if (d.state === 'queued' || d.state === 'no-worker') {
      s.noWorker.delete(d);
      setState(s, d, 'waiting');
      d.waitingOn = 1;
    } else if (d.state === 'processing') {
      const w = d.flight?.worker;
      detachFromWorker(s, d);
      if (w) s.outbox.key(w.id, 'free', d.key);
      setState(s, d, 'waiting');
      d.waitingOn = missingInputs(d);
    }
  }
  forEachWanter(ts, (c) => s.outbox.key(c.id, 'lost', ts.key));
  s.logs.push({ level: 'info', msg: 'result lost with its worker', data: { key: ts.key, recompute: isNeeded(ts) } });
  if (isNeeded(ts)) ensureComputable(s, ts);
  else s.releaseQ.push(ts);
}

/** Errs a task and, transitively, everything waiting on it. */
export function markErred(s: SchedulerCore, root: TaskState, error: SerializedError): void {
  const stack: [TaskState, SerializedError][] = [[root, error]];
  while (stack.length > 0) {
    const [ts, err] = stack.pop() as [TaskState, SerializedError];
    if (ts.state === 'erred' || ts.state === 'forgotten' || ts.state === 'memory') continue;
    if (ts.state === 'processing') {
      const w = ts.flight?.worker;
      detachFromWorker(s, ts);
      if (w) s.outbox.key(w.id, 'free', ts.key);
    }
    s.noWorker.delete(ts);
    rareOf(ts).error = err;
    if (ts.fn) ts.fn.group.erred++;
    if (s.forgetful.wants > 0) letGoForgotten(s, ts);
    setState(s, ts, 'erred');
    forEachWanter(ts, (c) => s.outbox.push(c.id, { op: 'erred', key: ts.key, error: err }));
    const forDependents = dependencyError(ts);
    for (const d of dependentsOf(ts)) {
      if (needsDeps(d.state)) stack.push([d, forDependents]);
    }
    if (!isNeeded(ts)) s.releaseQ.push(ts);
  }
}

/** Releases tasks no longer needed and forgets those nothing refers to; at most RELEASES_PER_EVENT per call. */
export function drainReleases(s: SchedulerCore): void {
  for (let budget = RELEASES_PER_EVENT; s.releaseQ.length > 0 && budget > 0; budget--) {
    const ts = s.releaseQ.pop() as TaskState;
    if (isNeeded(ts) || ts.state === 'forgotten') continue;
    switch (ts.state) {
      case 'memory':
        if (s.earlyOf.size > 0) dropEarly(s, ts);
        for (const w of ts.whoHas) {
          s.outbox.key(w.id, 'free', ts.key);
          w.stored--;
          w.storedBytes = Math.max(0, w.storedBytes - bytesOf(ts));
        }
        clearHolders(ts);
        setState(s, ts, 'released');
        break;
      case 'processing': {
        const w = ts.flight?.worker;
        detachFromWorker(s, ts);
        if (w) s.outbox.key(w.id, 'free', ts.key);
        setState(s, ts, 'released');
        break;
      }
      case 'waiting':
      case 'queued':
      case 'no-worker':
        s.noWorker.delete(ts);
        setState(s, ts, 'released');
        break;
    }
    if ((ts.state === 'released' || ts.state === 'erred') && !hasLiveDependents(ts)) {
      setState(s, ts, 'forgotten');
      s.tasks.delete(ts.key);
      gone(s, ts);
      // Its dependencies may have no live dependent left now.
      for (const d of ts.deps) s.releaseQ.push(d);
    }
  }
}

/** The error a task's dependents fail with: the failed task's, naming it. */
function dependencyError(failed: TaskState): SerializedError {
  const e = failed.rare?.error ?? { name: 'Error', message: 'unknown error' };
  return { name: e.name, message: e.message, stack: e.stack, failedKey: e.failedKey ?? failed.key };
}

/** A task fired and forgotten has ended: its hold goes (it is released if nothing else needs it). */
function letGoForgotten(s: SchedulerCore, ts: TaskState): void {
  if (removeWanter(ts, s.forgetful)) s.forgetful.wants--;
}
