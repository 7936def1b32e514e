/**
 * Workers: joining, leaving (their work and data are rescheduled), their
 * messages (results, errors, missing inputs, heartbeats), and the tick that
 * removes a worker silent for longer than the heartbeat timeout.
 */
import { addHolder, removeHolder, WorkerRecord, type TaskState, rareOf, groupOf, bytesOf } from './task-state.ts';
import { type SchedulerCore, detach } from './core.ts';
import { place, validWorker, describeNeeds } from './placement.ts';
import { toMemory, detachFromWorker, returnToWaiting, loseData, markErred } from './transitions.ts';
import { taskEvents } from './topics.ts';
import { earlyResults } from './early.ts';
import { forgetSteals, stealReplied } from './stealing.ts';
import { acquired, keepHeld } from './replicas.ts';
import { restartProgress } from './restart.ts';
import { forgetIdleFunctions } from './functions.ts';
import type { WorkerInfo, WorkerSummary, WorkerToScheduler } from '../protocol/messages.ts';
import type { SerializedError } from '../errors.ts';

/** A worker joined: tasks that had nowhere to go may fit now. */
export function addWorker(s: SchedulerCore, id: string, info: WorkerInfo): void {
  const w = new WorkerRecord(id, info.name, info.address, info.nthreads, info.resources, info.pid, s.now);
  w.stalledAtSeen = s.stalledMs;
  w.memoryLimit = info.memoryLimit;
  s.workers.set(id, w);
  s.byAddress.set(info.address, w);
  s.logs.push({ level: 'info', msg: 'worker joined', data: { worker: info.name, address: info.address, nthreads: info.nthreads, resources: info.resources } });
  // Tasks that had nowhere to go may fit now.
  for (const ts of [...s.noWorker]) {
    if (validWorker(s, ts, w)) {
      s.noWorker.delete(ts);
      place(s, ts);
    }
  }
}

/** A worker left or was removed: its running tasks go back to wait (blamed if it died running them), its results are lost. */
export function removeWorker(s: SchedulerCore, id: string, reason: string): void {
  const w = s.workers.get(id);
  if (!w) return;
  s.workers.delete(id);
  s.byAddress.delete(w.address);
  s.logs.push({ level: 'warn', msg: 'worker removed', data: { worker: w.name, address: w.address, reason, processing: w.processing, stored: w.stored } });

  // What it was running (tasks in flight) and what it held (a scan: workers leave rarely).
  const lost: TaskState[] = [];
  const processing: TaskState[] = [];
  for (const ts of s.byRun.values()) if (ts.flight?.worker === w) processing.push(ts);
  for (const ts of s.tasks.values()) {
    if (!removeHolder(ts, w)) continue;
    if (ts.whoHas.length === 0 && ts.state === 'memory') lost.push(ts);
  }
  w.stored = 0;
  forgetSteals(s, w);
  // Results put early there are gone with it.
  for (const [k, e] of s.early) if (e.worker === w) s.early.delete(k);
  for (const ts of lost) loseData(s, ts);
  // Blame the tasks the worker said it was running; if it said nothing yet, all of them.
  const anyExecuting = processing.some((ts) => ts.flight?.executing === true);
  for (const ts of processing) {
    const f = ts.flight;
    if (f?.worker !== w) continue;
    detach(s, ts);
    if (!anyExecuting || f.executing) rareOf(ts).suspicious++;
    const suspicious = ts.rare?.suspicious ?? 0;
    if (suspicious >= s.config.allowedFailures) {
      s.logs.push({ level: 'error', msg: 'task killed too many workers', data: { key: ts.key, workersDied: suspicious } });
      markErred(s, ts, {
        name: 'KilledWorkerError',
        message: `task ${ts.key} was running on ${suspicious} workers that died (the last: ${w.name}, ${reason}); weft stopped retrying it so it cannot kill another. Check it for crashes or memory use.`,
      });
    } else {
      returnToWaiting(s, ts);
    }
  }
}

/** A worker's message: it was heard now. */
export function workerMessage(s: SchedulerCore, id: string, msg: WorkerToScheduler): void {
  const w = s.workers.get(id);
  if (!w) return;
  w.lastSeen = s.now;
  w.stalledAtSeen = s.stalledMs;
  switch (msg.op) {
    case 'finished':
      for (let i = 0; i < msg.keys.length; i++) {
        taskFinished(s, w, msg.keys[i] as string, msg.runs[i] ?? -1, msg.nbytes[i] ?? 0, msg.durations[i] ?? 0);
      }
      break;
    case 'executing':
      for (let i = 0; i < msg.keys.length; i++) {
        const ts = s.byRun.get(msg.runs[i] as number);
        if (ts && ts.key === msg.keys[i] && ts.flight?.worker === w) ts.flight.executing = true;
      }
      break;
    case 'erred':
      taskErred(s, w, msg.key, msg.run, msg.error);
      break;
    case 'missing':
      missingData(s, w, msg.key, msg.run, msg.dep, msg.holders);
      break;
    case 'lost':
      lostData(s, w, msg.keys);
      break;
    case 'heartbeat':
      w.memory = msg.memory;
      if (msg.sentToPeers !== undefined) w.bytesSentToPeers = msg.sentToPeers;
      if (msg.fetched !== undefined) w.bytesFetched = msg.fetched;
      if (msg.cpu !== undefined) w.cpu = msg.cpu;
      w.paused = msg.paused === true;
      w.stuck = msg.stuck ?? 0;
      if (msg.spilledBytes !== undefined) w.spilledBytes = msg.spilledBytes;
      w.spillBlocked = msg.spillBlocked ?? null;
      break;
    case 'secede':
      taskSeceded(s, w, msg.key, msg.run, msg.away);
      break;
    case 'steal-reply':
      stealReplied(s, w, msg.keys, msg.runs, msg.released);
      break;
    case 'early':
      earlyResults(s, w, msg.parents, msg.runs, msg.keys, msg.nbytes);
      break;
    case 'task-events':
      taskEvents(s, w, msg.topics, msg.data);
      break;
    case 'acquired':
      acquired(s, w, msg.keys, msg.nbytes, msg.missing);
      break;
    case 'restarted':
      restartProgress(s, w.name);
      break;
    case 'holding':
      // Connected again after losing this scheduler: what it kept.
      keepHeld(s, w, msg.keys, msg.nbytes);
      break;
  }
}

/** The clock: removes workers silent for too long, errs tasks no worker took for too long. */
export function tick(s: SchedulerCore): void {
  forgetIdleFunctions(s);
  for (const w of s.workers.values()) {
    const silent = silence(s, w);
    if (silent > s.config.heartbeatTimeoutMs) {
      s.close.push({ id: w.id, reason: `no heartbeat for ${Math.round(silent / 1000)} s` });
      removeWorker(s, w.id, 'heartbeat timeout');
    }
  }
  if (s.noWorker.size > 0) {
    for (const ts of [...s.noWorker]) {
      if (s.now - (ts.rare?.noWorkerSince ?? 0) >= s.config.noWorkerTimeoutMs) {
        s.noWorker.delete(ts);
        markErred(s, ts, { name: 'NoWorkerError', message: `task ${ts.key} needs ${describeNeeds(ts)} and no worker offered it for ${Math.round(s.config.noWorkerTimeoutMs / 1000)} s` });
      }
    }
  }
}

// ------------------------------------------------------------------ task results
function taskFinished(s: SchedulerCore, w: WorkerRecord, key: string, run: number, nbytes: number, duration: number): void {
  const ts = s.byRun.get(run);
  if (!ts || ts.key !== key || ts.state !== 'processing' || ts.flight?.worker !== w) {
    // A result we no longer want (cancelled, rescheduled, forgotten): drop it there.
    const known = s.tasks.get(key);
    if (!(known && known.state === 'memory' && known.whoHas.includes(w))) s.outbox.key(w.id, 'free', key);
    return;
  }
  detach(s, ts, true);
  // A value given back (restore.ts) or already there is reported with no run time: not computed.
  if (duration > 0) s.computed++;
  const g = groupOf(ts);
  g.record(duration);
  g.done++;
  s.globalDuration = s.globalDuration < 0 ? duration : s.globalDuration + (duration - s.globalDuration) * 0.05;
  ts.nbytes = nbytes;
  addHolder(ts, w);
  w.stored++;
  w.storedBytes += nbytes;
  toMemory(s, ts);
}

/** A running task gave its thread back while it waits (`away`), or took it again: the worker's busy threads and queued work follow. */
function taskSeceded(s: SchedulerCore, w: WorkerRecord, key: string, run: number, away: boolean): void {
  const ts = s.byRun.get(run);
  const f = ts?.flight;
  if (!f || ts?.key !== key || f.worker !== w || f.seceded === away) return;
  f.seceded = away;
  w.seceded += away ? 1 : -1;
  w.occupancy = away ? Math.max(0, w.occupancy - f.expected) : w.occupancy + f.expected;
}

function taskErred(s: SchedulerCore, w: WorkerRecord, key: string, run: number, error: SerializedError): void {
  const ts = s.tasks.get(key);
  if (!ts || ts.state !== 'processing' || ts.flight?.worker !== w || ts.flight.run !== run) return;
  detachFromWorker(s, ts);
  if (ts.rare !== null && ts.rare.retriesLeft > 0) {
    ts.rare.retriesLeft--;
    s.logs.push({ level: 'info', msg: 'retrying task', data: { key, retriesLeft: ts.rare.retriesLeft, error: error.message } });
    returnToWaiting(s, ts);
    return;
  }
  markErred(s, ts, error);
}

/** The worker does not have results it was said to hold (a value it handed on): they are lost there, recomputed if needed. */
function lostData(s: SchedulerCore, w: WorkerRecord, keys: readonly string[]): void {
  for (const key of keys) {
    const ts = s.tasks.get(key);
    if (ts && notHeldBy(ts, w)) loseIfGone(s, ts);
  }
}

/** The worker does not hold this result after all: off its books. False if it was not a holder. */
function notHeldBy(ts: TaskState, w: WorkerRecord): boolean {
  if (!removeHolder(ts, w)) return false;
  w.stored--;
  w.storedBytes = Math.max(0, w.storedBytes - bytesOf(ts));
  return true;
}

/** A result in memory nowhere any more is lost (computed again if needed). */
function loseIfGone(s: SchedulerCore, ts: TaskState): void {
  if (ts.state === 'memory' && ts.whoHas.length === 0) loseData(s, ts);
}

function missingData(s: SchedulerCore, w: WorkerRecord, key: string, run: number, depKey: string, holders: string[]): void {
  const ts = s.tasks.get(key);
  if (!ts || ts.state !== 'processing' || ts.flight?.worker !== w || ts.flight.run !== run) return;
  const dep = s.tasks.get(depKey);
  if (dep) {
    for (const addr of holders) {
      const hw = s.byAddress.get(addr);
      if (hw) notHeldBy(dep, hw);
    }
    s.logs.push({ level: 'warn', msg: 'worker could not fetch a dependency', data: { key, dep: depKey, worker: w.name, holders } });
    loseIfGone(s, dep);
  }
  if (ts.state === 'processing' && ts.flight?.worker === w) {
    detachFromWorker(s, ts);
    s.outbox.key(w.id, 'free', ts.key);
    returnToWaiting(s, ts);
  }
}

/** How long a worker has been silent while the scheduler was running to hear it. */
export function silence(s: SchedulerCore, w: WorkerRecord): number {
  return s.now - w.lastSeen - (s.stalledMs - w.stalledAtSeen);
}

/** The workers, for clients. */
export function workerSummaries(s: SchedulerCore): WorkerSummary[] {
  return [...s.workers.values()].map((w) => ({
    name: w.name,
    address: w.address,
    nthreads: w.nthreads,
    resources: w.resources,
    processing: w.processing,
    stored: w.stored,
    storedBytes: w.storedBytes,
    memory: w.memory,
    pid: w.pid,
    bytesSentToPeers: w.bytesSentToPeers,
    bytesFetched: w.bytesFetched,
    cpu: w.cpu,
    paused: w.paused,
    spilledBytes: w.spilledBytes,
    stuck: w.stuck,
    memoryLimit: w.memoryLimit,
    stolenIn: w.stolenIn,
    stolenOut: w.stolenOut,
    ...(w.spillBlocked !== null ? { spillBlocked: w.spillBlocked } : {}),
  }));
}
