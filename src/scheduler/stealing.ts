/**
 * Work stealing, after Dask's stealing.py: tasks queued on a saturated
 * worker (sent there, not yet handed to a thread) move to a worker with a
 * free thread when fetching their inputs there costs less than waiting.
 *
 * - The balance runs when a worker has a free thread while another has
 *   tasks queued (a worker joined, a worker ran dry, a tick), at most every
 *   BALANCE_EVERY_MS of scheduler time. It looks only then at the tasks in
 *   flight: where nothing is uneven it costs a pass over the workers.
 * - A task is a candidate if every input is in memory (not one sent ahead
 *   behind its producer), it may run on the thief, and it takes long enough
 *   to be worth a round trip (stealMinDurationSeconds). It moves if, on the
 *   thief, it would start and finish before the victim would start it, by
 *   Dask's rule: thief's queue + transfer + run <= victim's queue - run / 2,
 *   each queue per thread and counting the moves already decided.
 * - The protocol: `steal` asks the victim for the tasks by run number; the
 *   victim drops each one it has not started and says which (`steal-reply`).
 *   Only those move, and only if the scheduler's record is still that run
 *   on that worker: a task that started, finished, erred or moved meanwhile
 *   is never run twice or lost. Replies for runs no longer asked about are
 *   ignored. The thief gone by then: the task is placed anew.
 */
import type { SchedulerCore } from './core.ts';
import { detachFromWorker } from './transitions.ts';
import { validWorker, placeOn, expectedDuration, place } from './placement.ts';
import { bytesOf, type PendingSteal, type TaskState, type WorkerRecord } from './task-state.ts';

/** Balances at most this often (scheduler time). */
const BALANCE_EVERY_MS = 20;
/** Steals asked per balance at most. */
const MAX_ASKED_PER_BALANCE = 256;

/** Moves queued tasks from saturated workers to workers with free threads, if any are uneven. */
export function balance(s: SchedulerCore): void {
  if (!s.config.stealing || s.workers.size < 2 || s.now - s.lastBalance < BALANCE_EVERY_MS) return;
  const thieves: WorkerRecord[] = [];
  let saturated = false;
  for (const w of s.workers.values()) {
    if (w.closing || w.paused || w.stuck >= w.nthreads) continue;
    // A free thread, counting the tasks on their way: a thief takes up to one more than its threads, so the round trip leaves none idle.
    if (w.busy + w.stealingIn < w.nthreads) thieves.push(w);
    else if (w.busy - w.stealingOut > w.nthreads) saturated = true;
  }
  if (thieves.length === 0 || !saturated) return;
  s.lastBalance = s.now;
  // Each worker's work per thread, from the durations measured now (a task's occupancy was guessed when it was sent, perhaps before its kind was ever measured); and the candidates.
  const load = new Map<WorkerRecord, number>();
  const add = (w: WorkerRecord, seconds: number): void => {
    load.set(w, (load.get(w) ?? 0) + seconds / w.nthreads);
  };
  const candidates: TaskState[] = [];
  for (const ts of s.byRun.values()) {
    const f = ts.flight;
    if (!f) continue;
    const d = f.seceded ? 0 : expectedDuration(s, ts);
    // A steal asked: its task counts for the thief already.
    add(f.stealing ? (s.steals.get(f.run)?.thief ?? f.worker) : f.worker, d);
    if (f.executing || f.stealing || f.worker.busy - f.worker.stealingOut <= f.worker.nthreads) continue;
    if (d < s.config.stealMinDurationSeconds || ts.deps.some((dep) => dep.state !== 'memory')) continue;
    candidates.push(ts);
  }
  const asked = new Map<WorkerRecord, TaskState[]>();
  let n = 0;
  for (let i = candidates.length - 1; i >= 0 && n < MAX_ASKED_PER_BALANCE; i--) {
    const ts = candidates[i] as TaskState;
    const victim = (ts.flight as { worker: WorkerRecord }).worker;
    const d = expectedDuration(s, ts);
    const victimWait = load.get(victim) ?? 0;
    let best: WorkerRecord | null = null;
    let bestCost = Infinity;
    for (const t of thieves) {
      if (t === victim || t.busy + t.stealingIn > t.nthreads || !validWorker(s, ts, t)) continue;
      let missing = 0;
      for (const dep of ts.deps) if (!dep.whoHas.includes(t)) missing += bytesOf(dep);
      const cost = (load.get(t) ?? 0) + missing / s.config.bandwidth + (missing > 0 ? s.config.stealLatencySeconds : 0) + d;
      if (cost < bestCost) {
        best = t;
        bestCost = cost;
      }
    }
    if (!best || bestCost > victimWait - d / 2) continue;
    const flight = ts.flight as NonNullable<TaskState['flight']>;
    flight.stealing = true;
    add(victim, -d);
    add(best, d);
    victim.stealingOut++;
    best.stealingIn++;
    victim.occupancy = Math.max(0, victim.occupancy - flight.expected);
    best.occupancy += flight.expected;
    s.steals.set(flight.run, { ts, victim, thief: best, expected: flight.expected });
    const list = asked.get(victim);
    if (list) list.push(ts);
    else asked.set(victim, [ts]);
    n++;
  }
  for (const [victim, tasks] of asked) {
    s.stealRequests += tasks.length;
    s.outbox.push(victim.id, { op: 'steal', keys: tasks.map((t) => t.key), runs: Float64Array.from(tasks, (t) => (t.flight as { run: number }).run) });
  }
}

/** The victim's answer: `released[i]` says whether it dropped the task of run `runs[i]` (it had not started). */
export function stealReplied(s: SchedulerCore, w: WorkerRecord, keys: readonly string[], runs: ArrayLike<number>, released: readonly boolean[]): void {
  for (let i = 0; i < keys.length; i++) {
    const run = runs[i] as number;
    const p = s.steals.get(run);
    // Not asked (any more): a stale or repeated reply.
    if (!p || p.victim !== w || p.ts.key !== keys[i]) continue;
    s.steals.delete(run);
    settle(p);
    const ts = p.ts;
    const f = ts.flight;
    if (ts.state !== 'processing' || f?.run !== run || f.worker !== w) continue;
    f.stealing = false;
    if (!released[i]) continue;
    // Dropped by the victim: off its books, onto the thief's (or anywhere, if the thief left or cannot take it now).
    detachFromWorker(s, ts);
    s.tasksStolen++;
    w.stolenOut++;
    if (s.workers.get(p.thief.id) === p.thief && !p.thief.closing && validWorker(s, ts, p.thief)) {
      p.thief.stolenIn++;
      placeOn(s, ts, p.thief);
    } else place(s, ts);
  }
}

/** A steal answered or dropped: its worker counts and occupancy as before the ask. */
function settle(p: PendingSteal): void {
  p.victim.stealingOut--;
  p.thief.stealingIn--;
  p.thief.occupancy = Math.max(0, p.thief.occupancy - p.expected);
  p.victim.occupancy += p.expected;
}

/** A worker left: its steals, as victim or thief, are dropped (a victim's tasks are rescheduled with it). */
export function forgetSteals(s: SchedulerCore, w: WorkerRecord): void {
  if (s.steals.size === 0) return;
  for (const [run, p] of s.steals) {
    if (p.victim !== w && p.thief !== w) continue;
    s.steals.delete(run);
    settle(p);
    if (p.ts.flight?.run === run) p.ts.flight.stealing = false;
  }
}
