/**
 * The scheduler's decisions, as a pure state machine: `handle(event)` changes
 * state and queues messages; `takeInstructions()` returns what to send, which
 * connections to close and what to log. No sockets, no timers, no clock: the
 * time comes in with the events. The state and its transitions are in
 * core.ts; each concern has a module of its own.
 */
import { type FnEntry, type WorkerRecord, ClientRecord, isNeeded, needsDeps, removeWanter, type TaskState, type TaskStatus, type StateCounts, dependentsOf, stateCounts, stateIndex, STATES, byState } from './task-state.ts';
import { SchedulerCore, clock, missingInputs, schedulerConfigSchema, type SchedulerConfig, type LogRecord, addWant } from './core.ts';
import { fillWorkers } from './placement.ts';
import { balance } from './stealing.ts';
import { adaptiveTarget } from './adaptive.ts';
import { syncClientGone, syncRequest, syncTick } from './coordination.ts';
import { want, drainReleases } from './transitions.ts';
import { updateGraph, dropHolds, scattered } from './intake.ts';
import { restored } from './restore.ts';
import { subscribe, unsubscribe } from './topics.ts';
import { advanceMoves, moveWorkerGone, replicate, retireWorkers } from './replicas.ts';
import { restart, restartProgress } from './restart.ts';
import { addWorker, removeWorker, workerMessage, tick, workerSummaries } from './workers.ts';
import type { ClientToScheduler, WorkerInfo, WorkerSummary, WorkerToScheduler } from '../protocol/messages.ts';

export { schedulerConfigSchema, TRANSITIONS, type LogRecord, type SchedulerConfig } from './core.ts';

export type SchedulerEvent =
  | { type: 'client-connected'; client: string }
  | { type: 'client-disconnected'; client: string }
  | { type: 'client-message'; client: string; msg: ClientToScheduler; now: number }
  | { type: 'worker-connected'; worker: string; info: WorkerInfo; now: number }
  | { type: 'worker-disconnected'; worker: string; reason: string }
  | { type: 'worker-message'; worker: string; msg: WorkerToScheduler; now: number }
  | { type: 'tick'; now: number }
  /** Go on with work left over from earlier events (see hasPendingWork); sent when nothing else is waiting. */
  | { type: 'continue' };

export interface Instructions {
  /** Messages per connection id, in order. */
  messages: Map<string, object[]>;
  /** Connections to close (a worker that stopped heartbeating). */
  close: { id: string; reason: string }[];
  logs: LogRecord[];
}

/** A task group's figures (see TaskGroup). */
export interface GroupCounts {
  name: string;
  done: number;
  erred: number;
  states: StateCounts;
}

export class SchedulerState {
  private readonly s: SchedulerCore;

  get config(): SchedulerConfig {
    return this.s.config;
  }

  get tasks(): ReadonlyMap<string, TaskState> {
    return this.s.tasks;
  }

  /** Task runs sent to workers so far (a task sent again after its worker died counts again). */
  get taskRuns(): number {
    return this.s.runCounter;
  }

  /** Results computed by task runs so far (see taskFinished). */
  get tasksComputed(): number {
    return this.s.computed;
  }

  get workers(): ReadonlyMap<string, WorkerRecord> {
    return this.s.workers;
  }

  get clients(): ReadonlyMap<string, ClientRecord> {
    return this.s.clients;
  }

  constructor(config: Partial<SchedulerConfig> = {}) {
    this.s = new SchedulerCore(schedulerConfigSchema().parse(config));
  }

  // ------------------------------------------------------------------ events
  handle(ev: SchedulerEvent): void {
    switch (ev.type) {
      case 'client-connected':
        this.s.clients.set(ev.client, new ClientRecord(ev.client));
        break;
      case 'client-disconnected':
        this.removeClient(ev.client);
        break;
      case 'client-message':
        clock(this.s, ev.now);
        this.clientMessage(ev.client, ev.msg);
        break;
      case 'worker-connected':
        clock(this.s, ev.now);
        addWorker(this.s, ev.worker, ev.info);
        // A worker restarted by its nanny comes back as a new process, under its name.
        restartProgress(this.s, ev.info.name);
        break;
      case 'worker-disconnected': {
        const w = this.s.workers.get(ev.worker);
        removeWorker(this.s, ev.worker, ev.reason);
        if (w) moveWorkerGone(this.s, w);
        break;
      }
      case 'worker-message':
        clock(this.s, ev.now);
        workerMessage(this.s, ev.worker, ev.msg);
        // A retiring worker's last task may have ended.
        advanceMoves(this.s);
        break;
      case 'tick':
        clock(this.s, ev.now);
        tick(this.s);
        syncTick(this.s);
        restartProgress(this.s, null);
        break;
      case 'continue':
        break;
    }
    drainReleases(this.s);
  }

  /** Work is left over (a long cascade of releases): send a `continue` event once other events are handled. */
  get hasPendingWork(): boolean {
    return this.s.releaseQ.length > 0;
  }

  /** What to do now: messages to send (root-task queue filled first), closes, logs. */
  takeInstructions(): Instructions {
    fillWorkers(this.s);
    // Workers with a free thread that the queue could not fill may take queued tasks from saturated ones.
    balance(this.s);
    drainReleases(this.s);
    const out = { messages: this.s.outbox.drain(), close: this.s.close, logs: this.s.logs };
    this.s.close = [];
    this.s.logs = [];
    return out;
  }

  // ------------------------------------------------------------------ clients
  private clientMessage(id: string, msg: ClientToScheduler): void {
    const c = this.s.clients.get(id);
    if (!c) return;
    switch (msg.op) {
      case 'sync':
        syncRequest(this.s, c, msg);
        break;
      case 'update-graph':
        updateGraph(this.s, c, msg);
        // The last part of a submission (or the only one): what earlier parts held is let go, whether this part was taken or not.
        if (!msg.more) dropHolds(this.s, c);
        break;
      case 'release':
        for (const key of msg.keys) {
          const ts = this.s.tasks.get(key);
          if (ts && removeWanter(ts, c)) {
            c.wants--;
            if (!isNeeded(ts)) this.s.releaseQ.push(ts);
          }
        }
        break;
      case 'want': {
        const missing: string[] = [];
        for (const key of msg.keys) {
          const ts = this.s.tasks.get(key);
          if (!ts) missing.push(key);
          else want(this.s, c, ts);
        }
        this.s.outbox.push(c.id, { op: 'want-reply', id: msg.id, missing });
        break;
      }
      case 'scattered':
        scattered(this.s, c, msg.id, msg.keys, msg.nbytes, msg.worker);
        break;
      case 'restore':
        restored(this.s, c, msg.keys, msg.nbytes, msg.worker);
        break;
      case 'who-has-all':
        this.s.outbox.push(c.id, { op: 'who-has-all-reply', id: msg.id, holders: msg.keys.map((k) => (this.s.tasks.get(k)?.whoHas ?? []).map((w) => w.address)) });
        break;
      case 'who-has': {
        const addresses: string[] = [];
        const index = new Map<WorkerRecord, number>();
        const holder = msg.keys.map((k) => {
          const who = this.s.tasks.get(k)?.whoHas;
          if (!who || who.length === 0) return -1;
          // Each holder in turn (a counter, not randomness: the machine stays deterministic).
          const w = who[who.length === 1 ? 0 : this.s.spread++ % who.length] as WorkerRecord;
          let i = index.get(w);
          if (i === undefined) {
            i = addresses.push(w.address) - 1;
            index.set(w, i);
          }
          return i;
        });
        this.s.outbox.push(c.id, { op: 'who-has-reply', id: msg.id, addresses, holder });
        break;
      }
      case 'workers':
        this.s.outbox.push(c.id, { op: 'workers-reply', id: msg.id, workers: workerSummaries(this.s) });
        break;
      case 'adaptive-target':
        this.s.outbox.push(c.id, { op: 'adaptive-target-reply', id: msg.id, workers: adaptiveTarget(this.s, msg.targetDuration) });
        break;
      case 'publish-dataset': {
        if (this.s.datasets.has(msg.name)) {
          this.s.outbox.push(c.id, { op: 'dataset-reply', id: msg.id, error: `a dataset named ${msg.name} exists; unpublish it first` });
          break;
        }
        const missing = msg.keys.filter((k) => !this.s.tasks.has(k));
        if (missing.length > 0) {
          this.s.outbox.push(c.id, { op: 'dataset-reply', id: msg.id, error: `unknown keys: ${missing.slice(0, 10).join(', ')}` });
          break;
        }
        const holder = new ClientRecord(`(dataset ${msg.name})`);
        for (const k of msg.keys) addWant(this.s, holder, this.s.tasks.get(k) as TaskState);
        this.s.datasets.set(msg.name, { holder, keys: msg.keys });
        this.s.outbox.push(c.id, { op: 'dataset-reply', id: msg.id });
        break;
      }
      case 'get-dataset': {
        const d = this.s.datasets.get(msg.name);
        this.s.outbox.push(c.id, d ? { op: 'dataset-reply', id: msg.id, keys: d.keys } : { op: 'dataset-reply', id: msg.id, error: `no dataset named ${msg.name}` });
        break;
      }
      case 'list-datasets':
        this.s.outbox.push(c.id, { op: 'dataset-reply', id: msg.id, names: [...this.s.datasets.keys()] });
        break;
      case 'unpublish-dataset': {
        const d = this.s.datasets.get(msg.name);
        if (d) {
          this.s.datasets.delete(msg.name);
          for (const k of d.keys) {
            const ts = this.s.tasks.get(k);
            if (ts && removeWanter(ts, d.holder) && !isNeeded(ts)) this.s.releaseQ.push(ts);
          }
        }
        this.s.outbox.push(c.id, d ? { op: 'dataset-reply', id: msg.id } : { op: 'dataset-reply', id: msg.id, error: `no dataset named ${msg.name}` });
        break;
      }
      case 'fire-and-forget':
        for (const key of msg.keys) {
          const ts = this.s.tasks.get(key);
          // Held by the forgetful wanter until it ends; one already ended needs nothing.
          if (ts && ts.state !== 'memory' && ts.state !== 'erred') addWant(this.s, this.s.forgetful, ts);
        }
        break;
      case 'subscribe':
        for (const t of msg.topics) subscribe(this.s, c, t);
        break;
      case 'replicate':
        replicate(this.s, c, msg.id, msg.keys, msg.n);
        break;
      case 'retire-workers':
        retireWorkers(this.s, c, msg.id, msg.names);
        break;
      case 'restart':
        restart(this.s, c, msg.id);
        break;
      case 'unsubscribe':
        for (const t of msg.topics) unsubscribe(this.s, c, t);
        break;
    }
  }

  private removeClient(id: string): void {
    const c = this.s.clients.get(id);
    if (!c) return;
    this.s.clients.delete(id);
    dropHolds(this.s, c);
    // Its semaphore leases go, and its waiting calls (a task's client: its worker died).
    syncClientGone(this.s, c);
    for (const t of c.topics ?? []) unsubscribe(this.s, c, t);
    // Tasks do not list their wanters' clients: find this one's by scanning (rare).
    if (c.wants > 0) {
      for (const ts of this.s.tasks.values()) {
        if (removeWanter(ts, c) && !isNeeded(ts)) this.s.releaseQ.push(ts);
      }
    }
    c.wants = 0;
  }

  /**
   * For tests: a description of the first broken bookkeeping invariant, or
   * null. O(tasks). The counts it checks are the ones every transition keeps:
   *
   * - a processing task is in flight under its run, on a live worker;
   * - each worker's `processing` is the number of tasks processing on it;
   * - `waiters` is the number of dependents in a state that needs this task
   *   (waiting, queued, no-worker, processing), plus one per client's
   *   submission in parts that holds it;
   * - a task in memory has a holder, and every holder is a live worker;
   * - a waiting task waits on exactly its dependencies not in memory;
   * - a result put early (early.ts) is on a live worker, put by a task
   *   still running there or whose result is held;
   * - each worker's steals in and out are the steals asked (stealing.ts).
   */
  checkInvariants(): string | null {
    if (this.s.illegal.length > 0) return `a transition TRANSITIONS does not allow: ${this.s.illegal[0]}`;
    let processing = 0;
    const onWorker = new Map<WorkerRecord, number>();
    const secededOn = new Map<WorkerRecord, number>();
    const holds = new Map<TaskState, number>();
    for (const c of this.s.clients.values()) for (const part of c.held ?? []) for (const ts of part) holds.set(ts, (holds.get(ts) ?? 0) + 1);
    const counted = stateCounts();
    for (const ts of this.s.tasks.values()) (counted[stateIndex(ts.state)] as number)++;
    for (let i = 0; i < STATES.length - 1; i++) {
      // All but forgotten: those tasks are gone from the table.
      if (this.s.counts[i] !== counted[i]) return `${this.s.counts[i]} tasks counted as ${STATES[i]}; ${counted[i]} are`;
    }
    for (const ts of this.s.tasks.values()) {
      if (ts.state === 'processing') {
        processing++;
        if (!ts.flight || this.s.byRun.get(ts.flight.run) !== ts) return `task ${ts.key} is processing but not in flight under its run`;
        const w = ts.flight.worker;
        if (!w || this.s.workers.get(w.id) !== w) return `task ${ts.key} is processing on a worker that is gone`;
        onWorker.set(w, (onWorker.get(w) ?? 0) + 1);
        if (ts.flight.seceded) secededOn.set(w, (secededOn.get(w) ?? 0) + 1);
      } else if (ts.flight !== null) return `task ${ts.key} is ${ts.state} but still on worker ${ts.flight.worker.name}`;
      let needing = 0;
      for (const d of dependentsOf(ts)) if (needsDeps(d.state)) needing++;
      const held = holds.get(ts) ?? 0;
      if (ts.waiters !== needing + held) return `task ${ts.key} counts ${ts.waiters} waiters; ${needing} dependents need it and ${held} submissions hold it`;
      if (ts.state === 'memory' && ts.whoHas.length === 0) return `task ${ts.key} is in memory with no holder`;
      for (const w of ts.whoHas) if (this.s.workers.get(w.id) !== w) return `task ${ts.key} is held by worker ${w.name}, which is gone`;
      if (ts.state === 'waiting') {
        const missing = missingInputs(ts);
        if (ts.waitingOn !== missing) return `task ${ts.key} waits on ${ts.waitingOn} dependencies; ${missing} are not in memory`;
      }
      for (const d of ts.deps) if (d.state === 'forgotten' && needsDeps(ts.state)) return `task ${ts.key} (${ts.state}) depends on ${d.key}, which is forgotten`;
    }
    if (this.s.byRun.size !== processing) return `${this.s.byRun.size} runs in flight for ${processing} processing tasks`;
    for (const [k, e] of this.s.early) {
      const p = e.parent;
      const live = p.state === 'processing' ? p.flight?.worker === e.worker : p.state === 'memory';
      if (!live || this.s.workers.get(e.worker.id) !== e.worker) return `result ${k} was put early on worker ${e.worker.name} by task ${p.key}, which is ${p.state}${p.state === 'processing' ? ' elsewhere' : ''}, or that worker is gone`;
      if (!this.s.earlyOf.get(e.parent)?.includes(k)) return `result ${k} put early is not among the keys its task put`;
    }
    const calls = new Map<FnEntry, number>();
    for (const ts of this.s.tasks.values()) if (ts.fn !== null) calls.set(ts.fn, (calls.get(ts.fn) ?? 0) + 1);
    let idleBytes = 0;
    for (const fn of this.s.fnByRef.values()) {
      if (fn.refs !== (calls.get(fn) ?? 0)) return `function ${fn.id} counts ${fn.refs} tasks; ${calls.get(fn) ?? 0} call it`;
      if ((fn.refs === 0) !== this.s.idleFns.has(fn)) return `function ${fn.id} has ${fn.refs} tasks but is ${this.s.idleFns.has(fn) ? '' : 'not '}idle`;
      if (this.s.idleFns.has(fn)) idleBytes += fn.def[1].length;
    }
    for (const fn of calls.keys()) if (this.s.fnByRef.get(fn.key) !== fn) return `a task calls function ${fn.id}, which is forgotten`;
    if (idleBytes !== this.s.idleFnBytes) return `idle functions counted as ${this.s.idleFnBytes} bytes; they are ${idleBytes}`;
    const stealsIn = new Map<WorkerRecord, number>();
    const stealsOut = new Map<WorkerRecord, number>();
    for (const [run, p] of this.s.steals) {
      stealsIn.set(p.thief, (stealsIn.get(p.thief) ?? 0) + 1);
      stealsOut.set(p.victim, (stealsOut.get(p.victim) ?? 0) + 1);
      if (p.ts.flight?.run === run && !p.ts.flight.stealing) return `task ${p.ts.key} is asked of ${p.victim.name} by a steal but not marked so`;
    }
    for (const w of this.s.workers.values()) {
      if (w.processing !== (onWorker.get(w) ?? 0)) return `worker ${w.name} counts ${w.processing} processing tasks; ${onWorker.get(w) ?? 0} are on it`;
      if (w.seceded !== (secededOn.get(w) ?? 0)) return `worker ${w.name} counts ${w.seceded} seceded tasks; ${secededOn.get(w) ?? 0} are`;
      if (w.stealingIn !== (stealsIn.get(w) ?? 0) || w.stealingOut !== (stealsOut.get(w) ?? 0)) return `worker ${w.name} counts ${w.stealingIn}/${w.stealingOut} steals in/out; ${stealsIn.get(w) ?? 0}/${stealsOut.get(w) ?? 0} are asked`;
    }
    return null;
  }

  /** How many workers the work wants now, for `targetDuration` seconds of it per thread (adaptive.ts). */
  adaptiveTarget(targetDuration = 5): number {
    return adaptiveTarget(this.s, targetDuration);
  }

  /** Work stealing so far: tasks asked of their workers, and tasks moved (for /metrics). */
  stealCounts(): { requests: number; moved: number } {
    return { requests: this.s.stealRequests, moved: this.s.tasksStolen };
  }

  /** Counts of tasks per state, for logs and tests. */
  workerSummaries(): WorkerSummary[] {
    return workerSummaries(this.s);
  }

  /** Per task group: tasks finished and erred so far, and its tasks per state now. */
  groupCounts(): GroupCounts[] {
    return [...this.s.groups.values()].map((g) => ({ name: g.name, done: g.done, erred: g.erred, states: byState(g.states) }));
  }

  /** Tasks per state (the states any task is in), from the counts setState keeps: no pass over the tasks. */
  stateCounts(): Partial<Record<TaskStatus, number>> {
    const out: Partial<Record<TaskStatus, number>> = {};
    STATES.forEach((state, i) => {
      const n = this.s.counts[i] ?? 0;
      if (n > 0 && state !== 'forgotten') out[state] = n;
    });
    return out;
  }

  /** A known task's group (its function's label; null for scattered data) and state, or null. */
  taskView(key: string): { group: string | null; state: TaskStatus } | null {
    const ts = this.s.tasks.get(key);
    return ts ? { group: ts.fn?.group.name ?? null, state: ts.state } : null;
  }
}
