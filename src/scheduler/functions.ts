/**
 * Forgetting task functions. A function is interned once (intake.ts) and
 * sent once to each worker that runs it; an inline function's source can be
 * large, and a client making new ones (a closure's source per call, a
 * notebook re-run) would fill the scheduler and every worker with sources
 * of tasks long gone. So a function no task refers to any more is forgotten
 * after `forgetFunctionsAfterMs`, or sooner, oldest first, while such idle
 * sources add up to more than `idleFunctionBytes`; each worker that knew it
 * is told (`forget-fns`) and drops it too. A task that calls it again later
 * interns it again, under a new id.
 */
import { idle, type SchedulerCore } from './core.ts';
import type { FnEntry } from './task-state.ts';

/** Forgets the idle functions that have waited long enough, or that the memory bound pushes out. Called on every tick. */
export function forgetIdleFunctions(s: SchedulerCore): void {
  if (s.idleFns.size === 0) return;
  const gone: FnEntry[] = [];
  // Oldest first: the set keeps the order they became idle in.
  for (const fn of s.idleFns) {
    if (s.now - fn.idleSince < s.config.forgetFunctionsAfterMs && s.idleFnBytes <= s.config.idleFunctionBytes) break;
    gone.push(fn);
    s.idleFns.delete(fn);
    s.idleFnBytes -= fn.def[1].length;
  }
  if (gone.length === 0) return;
  for (const fn of gone) s.fnByRef.delete(fn.key);
  for (const w of s.workers.values()) {
    const ids: number[] = [];
    for (const fn of gone) if (w.knownFns.delete(fn.id)) ids.push(fn.id);
    if (ids.length > 0) s.outbox.push(w.id, { op: 'forget-fns', ids });
  }
}

/** Every task is gone (a restart): every function is idle from now. */
export function allFunctionsIdle(s: SchedulerCore): void {
  for (const fn of s.fnByRef.values()) idle(s, fn);
}
