/**
 * Placement: where a ready task runs. Root-ish tasks wait in the
 * scheduler's queue until a worker has a free slot; others go to the worker
 * where they can start soonest (its queued work plus the time to fetch the
 * inputs it lacks); a task no worker can run waits in `no-worker`.
 */
import { type FnEntry, type TaskGroup, type WorkerRecord, type TaskState, dependentCount, rareOf, groupOf, priorityOf, bytesOf } from './task-state.ts';
import { type SchedulerCore, setState, attach } from './core.ts';
import { speculativeDependent } from './speculation.ts';

/**
 * Root-ish tasks have no data to be near: no dependencies, or only a few
 * that are shared by many tasks (a broadcast value). As Dask's rule (a
 * group whose dependencies are fewer than 5 tasks in all), each must be
 * shared by at least a fifth of its group: the 64 picks from each of 64
 * split partitions of a shuffle share their input too, but their group
 * has 64 such inputs, and a pick belongs where its partition is.
 */
export function isRootish(s: SchedulerCore, ts: TaskState): boolean {
  if (ts.deps.length === 0) return true;
  if (ts.deps.length > 4) return false;
  let live = -1;
  for (const d of ts.deps) {
    const n = dependentCount(d);
    if (n < 16) return false;
    if (live < 0) live = liveTasks(groupOf(ts));
    if (n * 5 <= live) return false;
  }
  return true;
}

/** The group's tasks not forgotten. */
function liveTasks(g: TaskGroup): number {
  let n = 0;
  for (let i = 0; i < g.states.length - 1; i++) n += g.states[i] as number;
  return n;
}

/** Sends a ready task to the worker where it can start soonest, or holds it as `no-worker` (reported at once). */
export function place(s: SchedulerCore, ts: TaskState): void {
  const w = chooseWorker(s, ts);
  if (!w) {
    if (ts.state !== 'no-worker') {
      setState(s, ts, 'no-worker');
      rareOf(ts).noWorkerSince = s.now;
      s.noWorker.add(ts);
      const reason = `task ${ts.key} needs ${describeNeeds(ts)}, which no connected worker has; it waits ${Math.round(s.config.noWorkerTimeoutMs / 1000)} s for one to join, then errs`;
      s.logs.push({ level: 'warn', msg: 'no worker can run task', data: { key: ts.key, needs: describeNeeds(ts) } });
      for (const c of s.clients.values()) s.outbox.push(c.id, { op: 'no-worker', keys: [ts.key], reason });
    }
    return;
  }
  s.noWorker.delete(ts);
  sendCompute(s, ts, w);
}

/** Sends a task to this worker (it may run there: see validWorker). */
export function placeOn(s: SchedulerCore, ts: TaskState, w: WorkerRecord): void {
  s.noWorker.delete(ts);
  sendCompute(s, ts, w);
}

/**
 * The worker where the task can start soonest: its queued work per thread
 * plus the time to fetch the dependency bytes it does not hold.
 */
function chooseWorker(s: SchedulerCore, ts: TaskState): WorkerRecord | null {
  return (inputBytes(ts) >= LOCAL_INPUT_BYTES ? cheapest(s, ts, true) : null) ?? cheapest(s, ts, false);
}

/**
 * A task whose inputs come to this much runs on a worker holding one of
 * them, as Dask's decide_worker places every task, even if that worker
 * looks busier: its queue is an estimate (a kind of task never measured
 * counts half a second), and moving the input costs for sure. The 64 picks
 * from each 1 MiB partition of a shuffle moved 60 MiB more between workers
 * than the 32 MiB the exchange needs, before. Smaller inputs go where the
 * task can start soonest, transfer included: a task queued behind a long
 * one on the only holder would otherwise wait for it (work stealing moves
 * only tasks known to take 5 ms or more).
 */
const LOCAL_INPUT_BYTES = 256 * 1024;

function inputBytes(ts: TaskState): number {
  let n = 0;
  for (const d of ts.deps) n += bytesOf(d);
  return n;
}

function cheapest(s: SchedulerCore, ts: TaskState, holders: boolean): WorkerRecord | null {
  let best: WorkerRecord | null = null;
  let bestCost = Infinity;
  for (const w of s.workers.values()) {
    if (w.closing || !validWorker(s, ts, w)) continue;
    if (holders && !holdsAny(ts, w)) continue;
    let missingBytes = 0;
    for (const d of ts.deps) if (!d.whoHas.includes(w)) missingBytes += bytesOf(d);
    const busy = w.busy < w.nthreads ? 0 : w.occupancy / w.nthreads;
    // Every thread stuck on a task that ignores its cancellation: last choice, until its threads are ended and replaced.
    const cost = busy + missingBytes / s.config.bandwidth + (w.stuck >= w.nthreads ? 1e6 : 0);
    if (cost < bestCost || (cost === bestCost && best !== null && w.processing < best.processing)) {
      best = w;
      bestCost = cost;
    }
  }
  return best;
}

function holdsAny(ts: TaskState, w: WorkerRecord): boolean {
  for (const d of ts.deps) if (d.whoHas.includes(w)) return true;
  return false;
}

/** Whether the worker has the task's resources and is one it may run on. */
export function validWorker(s: SchedulerCore, ts: TaskState, w: WorkerRecord): boolean {
  const rare = ts.rare;
  if (rare === null) return true;
  if (rare.workers && !rare.workers.includes(w.name) && !rare.workers.includes(w.address)) return false;
  if (rare.resources) {
    for (const r in rare.resources) if ((w.resources[r] ?? 0) < (rare.resources[r] as number)) return false;
  }
  return true;
}

/** Seconds a task is expected to run: its group's measured average, else the scheduler's, else the configured default. */
export function expectedDuration(s: SchedulerCore, ts: TaskState): number {
  const g = groupOf(ts);
  if (g.duration >= 0) return g.duration;
  return s.globalDuration >= 0 ? s.globalDuration : s.config.defaultDurationSeconds;
}

/**
 * Sends a task to a worker, and then, speculatively, the chain behind it:
 * while a task's only dependent waits for nothing else and would run on
 * this worker anyway, it goes along now and the worker starts it the moment
 * the result exists, with no round trip through the scheduler. A task that
 * leaves the worker without a result takes its speculative dependents back
 * with it (see detachFromWorker).
 */
function sendCompute(s: SchedulerCore, ts: TaskState, w: WorkerRecord): void {
  let next: TaskState | null = ts;
  while (next) {
    const index = sendOne(s, next, w);
    const prev: TaskState = next;
    next = speculativeDependent(s, next, w);
    // Its value goes only to the task behind it (no client wants it): the worker need not keep it.
    if (next && prev.wanter === null) s.outbox.computeBatch(w.id).ephemeral.push(index);
  }
}

/** Adds a task to the worker's next compute message; returns its index there. */
function sendOne(s: SchedulerCore, ts: TaskState, w: WorkerRecord): number {
  setState(s, ts, 'processing');
  const flight = attach(s, ts, w, expectedDuration(s, ts));
  const fn = ts.fn as FnEntry;
  if (!w.knownFns.has(fn.id)) {
    w.knownFns.add(fn.id);
    s.outbox.push(w.id, { op: 'fns', ids: [fn.id], defs: [fn.def] });
  }
  const b = s.outbox.computeBatch(w.id);
  b.keys.push(ts.key);
  b.runs.push(flight.run);
  b.fns.push(fn.id);
  b.addArgs(ts.argBuf as Uint8Array, ts.argStart, ts.argEnd);
  b.orders.push(ts.order);
  b.priorities.push(priorityOf(ts));
  b.depCounts.push(ts.deps.length);
  for (const d of ts.deps) {
    b.deps.push(d.key);
    // A dependency still running here (speculation): the worker waits for it locally.
    b.who.push(d.state === 'memory' ? d.whoHas.map((h) => h.address) : [w.address]);
    b.sizes.push(bytesOf(d));
  }
  if (ts.rare?.resources) b.resources.push([b.keys.length - 1, ts.rare.resources]);
  return b.keys.length - 1;
}

/**
 * Hands queued root tasks to workers with free slots: one task per worker
 * per pass, least busy first, so a short queue is spread, not piled on one.
 */
export function fillWorkers(s: SchedulerCore): void {
  if (s.queue.size === 0 || s.workers.size === 0) return;
  let open = [...s.workers.values()].filter((w) => !w.closing && w.stuck < w.nthreads);
  open.sort((a, b) => a.busy / a.nthreads - b.busy / b.nthreads);
  while (open.length > 0 && s.queue.size > 0) {
    const still: WorkerRecord[] = [];
    for (const w of open) {
      const head = nextQueued(s);
      if (!head) return;
      if (w.busy >= slots(s, w, head)) continue;
      s.queue.pop();
      sendCompute(s, head, w);
      still.push(w);
    }
    open = still;
  }
}

/** The queue's head, skipping entries no longer queued (lazy removal). */
export function nextQueued(s: SchedulerCore): TaskState | undefined {
  while (s.queue.size > 0) {
    const head = s.queue.peek() as TaskState;
    if (head.state === 'queued') return head;
    s.queue.pop();
  }
  return undefined;
}

/**
 * How many tasks a worker may hold: about `queueTargetSeconds` of work per
 * thread, at least ceil(1.1 × threads). Short tasks get a deep queue so the
 * round trip to the scheduler never idles a thread; long or unknown ones a
 * shallow one, so a worker never takes on far more than it can run.
 */
export function slots(s: SchedulerCore, w: WorkerRecord, next: TaskState): number {
  const d = groupOf(next).duration;
  let perThread = 1.1;
  if (d >= 0) {
    perThread = s.config.queueTargetSeconds / (d + s.config.taskOverheadSeconds);
    perThread = Math.min(s.config.maxQueuedPerThread, Math.max(1.1, perThread));
  }
  return Math.ceil(w.nthreads * perThread);
}

/** What a task needs of a worker, for messages. */
export function describeNeeds(ts: TaskState): string {
  const parts: string[] = [];
  const resources = ts.rare?.resources;
  const workers = ts.rare?.workers;
  if (resources) parts.push(`resources ${Object.entries(resources).map(([k, v]) => `${k}=${v}`).join(',')}`);
  if (workers) parts.push(`one of the workers ${workers.join(', ')}`);
  return parts.join(' and ') || 'a worker';
}
