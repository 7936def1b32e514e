/**
 * client.restart: the cluster forgets all its work. Every client's futures
 * are cancelled, every task, dataset and pending copy is dropped, and every
 * worker drops its results and replaces its executor threads (ending any
 * task stuck in a loop). A worker under a nanny restarts as a new process
 * instead (its nanny starts it again at once); one without stays connected.
 * The request is answered once each worker has said it is done or has come
 * back under its name, or after RESTART_WAIT_MS.
 */
import { allFunctionsIdle } from './functions.ts';
import type { SchedulerCore } from './core.ts';
import type { ClientRecord } from './task-state.ts';


const RESTART_WAIT_MS = 60_000;

export function restart(s: SchedulerCore, c: ClientRecord, id: number): void {
  for (const cl of s.clients.values()) {
    s.outbox.push(cl.id, { op: 'restarted' });
    cl.wants = 0;
    cl.held = null;
  }
  for (const m of s.moves) s.outbox.push(m.client, { op: 'moved', id: m.id, failed: ['the cluster restarted'], ...(m.retire.length > 0 ? { retired: [] } : {}) });
  s.moves = [];
  for (const w of s.workers.values()) w.closing = false;
  s.tasks.clear();
  s.byRun.clear();
  s.early.clear();
  s.steals.clear();
  s.earlyOf.clear();
  s.queue.clear();
  s.noWorker.clear();
  s.releaseQ = [];
  s.datasets.clear();
  s.forgetful.wants = 0;
  s.counts.fill(0);
  // Groups keep their measured durations and their totals (metrics counters never go down); their tasks are gone.
  for (const g of s.groups.values()) g.states.fill(0);
  allFunctionsIdle(s);
  for (const w of s.workers.values()) {
    w.processing = 0;
    w.occupancy = 0;
    w.stored = 0;
    w.storedBytes = 0;
    w.stealingIn = 0;
    w.seceded = 0;
    w.stealingOut = 0;
    s.outbox.push(w.id, { op: 'restart' });
  }
  // A restart asked during another answers both when the workers are done.
  if (s.restarting) s.outbox.push(s.restarting.client, { op: 'restart-reply', id: s.restarting.id });
  s.restarting = { client: c.id, id, waiting: new Set([...s.workers.values()].map((w) => w.name)), deadline: s.now + RESTART_WAIT_MS };
  restartProgress(s, null);
}

/**
 * Worker `name` restarted (said so, or connected again as a new process);
 * null: only check. Answers the request once none is left, or at its deadline.
 */
export function restartProgress(s: SchedulerCore, name: string | null): void {
  const r = s.restarting;
  if (!r) return;
  if (name !== null) r.waiting.delete(name);
  if (r.waiting.size > 0 && s.now < r.deadline) return;
  s.restarting = null;
  s.outbox.push(r.client, { op: 'restart-reply', id: r.id });
}
