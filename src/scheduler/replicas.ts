/**
 * Results copied to more workers: replicate (Dask's), and retiring workers,
 * whose results go to the others before they shut down. Workers fetch the
 * copies themselves (`acquire`, like a task's inputs) and say when they hold
 * them (`acquired`); a request is answered once every copy it asked for is
 * there or failed.
 */
import type { SchedulerCore } from './core.ts';
import { addHolder, bytesOf, type ClientRecord, isNeeded, type Move, type TaskState, type WorkerRecord } from './task-state.ts';


const copyId = (w: WorkerRecord, key: string): string => `${w.id}\u0000${key}`;

function newMove(c: ClientRecord, id: number): Move {
  return { client: c.id, id, outstanding: new Set(), failed: [], retire: [], started: false };
}

/** Workers taking new work and data (not retiring). */
function openWorkers(s: SchedulerCore): WorkerRecord[] {
  return [...s.workers.values()].filter((w) => !w.closing);
}

/**
 * Asks for copies: `plan` maps each task to the workers that should get one.
 * Targets are the open workers holding least, counting what this plan gives them.
 */
function ask(s: SchedulerCore, move: Move, wants: [TaskState, number][]): void {
  const open = openWorkers(s);
  const planned = new Map<WorkerRecord, number>(open.map((w) => [w, w.storedBytes]));
  const byWorker = new Map<WorkerRecord, TaskState[]>();
  for (const [ts, copies] of wants) {
    const targets = open.filter((w) => !ts.whoHas.includes(w)).sort((a, b) => (planned.get(a) as number) - (planned.get(b) as number) || a.id.localeCompare(b.id));
    for (const w of targets.slice(0, copies)) {
      planned.set(w, (planned.get(w) as number) + bytesOf(ts));
      move.outstanding.add(copyId(w, ts.key));
      const list = byWorker.get(w);
      if (list) list.push(ts);
      else byWorker.set(w, [ts]);
    }
  }
  for (const [w, list] of byWorker) {
    s.outbox.push(w.id, { op: 'acquire', keys: list.map((ts) => ts.key), who: list.map((ts) => ts.whoHas.map((h) => h.address)), sizes: Float64Array.from(list, bytesOf) });
  }
}

/** Copies of each key's result on `n` workers in all (as many as there are, if fewer). */
export function replicate(s: SchedulerCore, c: ClientRecord, id: number, keys: readonly string[], n: number): void {
  const move = newMove(c, id);
  const wants: [TaskState, number][] = [];
  for (const key of keys) {
    const ts = s.tasks.get(key);
    if (!ts || ts.state !== 'memory') move.failed.push(`${key}: not in memory`);
    else if (ts.whoHas.length < n) wants.push([ts, n - ts.whoHas.length]);
  }
  move.started = true;
  ask(s, move, wants);
  s.moves.push(move);
  advanceMoves(s);
}

/** Named workers stop taking work; once their running tasks end, the results only they hold go to the others, then they shut down. */
export function retireWorkers(s: SchedulerCore, c: ClientRecord, id: number, names: readonly string[]): void {
  const move = newMove(c, id);
  for (const name of names) {
    const w = [...s.workers.values()].find((x) => x.name === name);
    if (!w) move.failed.push(`${name}: no such worker`);
    else if (!w.closing) {
      w.closing = true;
      move.retire.push(w);
    }
  }
  s.moves.push(move);
  advanceMoves(s);
}

/**
 * Results a worker says it holds (copies it acquired, or what it kept while
 * it had lost this scheduler): the ones in memory here count it as a
 * holder; the rest (released meanwhile, recomputed elsewhere, never known to
 * this scheduler) are freed there.
 */
export function keepHeld(s: SchedulerCore, w: WorkerRecord, keys: readonly string[], nbytes: ArrayLike<number>): void {
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const ts = s.tasks.get(key);
    if (ts && ts.state === 'memory') {
      if (!ts.whoHas.includes(w)) {
        addHolder(ts, w);
        w.stored++;
        w.storedBytes += nbytes[i] ?? 0;
      }
    } else s.outbox.key(w.id, 'free', key);
  }
}

/** A worker's `acquired` report. */
export function acquired(s: SchedulerCore, w: WorkerRecord, keys: readonly string[], nbytes: ArrayLike<number>, missing: readonly string[]): void {
  keepHeld(s, w, keys, nbytes);
  for (const key of keys) settle(s, copyId(w, key), null);
  for (const key of missing) settle(s, copyId(w, key), `${key} to ${w.name}: no holder gave it`);
  advanceMoves(s);
}

/** A worker left: the copies it was to make failed; a worker retiring is retired. */
export function moveWorkerGone(s: SchedulerCore, w: WorkerRecord): void {
  const prefix = `${w.id}\u0000`;
  for (const m of s.moves) {
    for (const c of m.outstanding) {
      if (!c.startsWith(prefix)) continue;
      m.outstanding.delete(c);
      m.failed.push(`${c.slice(prefix.length)} to ${w.name}: the worker left`);
    }
  }
  advanceMoves(s);
}

function settle(s: SchedulerCore, copy: string, failure: string | null): void {
  for (const m of s.moves) if (m.outstanding.delete(copy) && failure !== null) m.failed.push(failure);
}

/** Starts retirements whose workers are idle, and answers the requests that are done. */
export function advanceMoves(s: SchedulerCore): void {
  if (s.moves.length === 0) return;
  for (const m of s.moves) if (!m.started) startRetirement(s, m);
  const done = s.moves.filter((m) => m.started && m.outstanding.size === 0);
  if (done.length === 0) return;
  s.moves = s.moves.filter((m) => !done.includes(m));
  for (const m of done) {
    const retired: string[] = [];
    for (const w of m.retire) {
      if (s.workers.get(w.id) !== w || !w.closing) continue;
      retired.push(w.name);
      s.close.push({ id: w.id, reason: 'retired' });
    }
    s.outbox.push(m.client, { op: 'moved', id: m.id, failed: m.failed, ...(m.retire.length > 0 ? { retired } : {}) });
  }
}

/** Once the retiring workers run nothing, asks the open workers for copies of what only retiring ones hold. */
function startRetirement(s: SchedulerCore, m: Move): void {
  const here = m.retire.filter((w) => s.workers.get(w.id) === w);
  if (here.some((w) => w.processing > 0)) return;
  m.started = true;
  if (here.length === 0) return;
  if (openWorkers(s).length === 0) {
    m.failed.push('no other worker is left to take their results: none retired');
    for (const w of here) w.closing = false;
    m.retire = [];
    return;
  }
  const wants: [TaskState, number][] = [];
  // A scan of every task: retiring is rare, and a task does not list its holders' keys.
  for (const ts of s.tasks.values()) {
    if (ts.state !== 'memory' || !isNeeded(ts) || !ts.whoHas.some((w) => here.includes(w))) continue;
    if (ts.whoHas.every((w) => w.closing)) wants.push([ts, 1]);
  }
  ask(s, m, wants);
}
