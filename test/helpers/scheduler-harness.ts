/**
 * Drives the scheduler state machine directly: events in, the messages it
 * wants sent out. No sockets, no clock.
 */
import { GraphBuilder, type TaskFn, type TaskOptions } from '../../src/client/graph.ts';
import { KeyRef } from '../../src/protocol/codec.ts';
import type { ComputeMsg } from '../../src/protocol/messages.ts';
import { SchedulerState, type SchedulerConfig } from '../../src/scheduler/state-machine.ts';
import { plainColumns } from './columns.ts';

export type Msg = Record<string, unknown> & { op: string };

export class Harness {
  readonly sm: SchedulerState;
  now = 1_000;
  private nextGraph = 1;
  /** Everything sent, per connection id, since the last `take`. */
  sent = new Map<string, Msg[]>();
  closed: { id: string; reason: string }[] = [];

  constructor(config: Partial<SchedulerConfig> = {}) {
    this.sm = new SchedulerState(config);
  }

  private flush(): void {
    // As the server does: left-over work goes on until none is left.
    while (this.sm.hasPendingWork) this.sm.handle({ type: 'continue' });
    const ins = this.sm.takeInstructions();
    const broken = this.sm.checkInvariants();
    if (broken) throw new Error(`scheduler bookkeeping broken: ${broken}`);
    for (const [id, msgs] of ins.messages) {
      const list = this.sent.get(id) ?? [];
      for (const m of msgs) list.push(plainColumns(m) as Msg);
      this.sent.set(id, list);
    }
    this.closed.push(...ins.close);
  }

  /** Messages sent to `id` since the last call (and forgets them). */
  take(id: string): Msg[] {
    const out = this.sent.get(id) ?? [];
    this.sent.delete(id);
    return out;
  }

  /** The tasks sent to a worker since the last take, one object per task (compute messages are columnar). */
  computes(id: string): Msg[] {
    const out: Msg[] = [];
    for (const m of this.take(id)) {
      if (m.op !== 'compute') continue;
      const c = m as unknown as ComputeMsg;
      let d = 0;
      c.keys.forEach((key, i) => {
        const n = c.depCounts[i] as number;
        const task: Msg = { op: 'compute', key, run: c.runs[i], deps: c.deps.slice(d, d + n), who: c.who.slice(d, d + n) };
        const res = c.resources.find(([j]) => j === i);
        if (res) task.resources = res[1];
        out.push(task);
        d += n;
      });
    }
    return out;
  }

  client(id = 'c1'): void {
    this.sm.handle({ type: 'client-connected', client: id });
    this.flush();
  }

  worker(id: string, opts: { nthreads?: number; resources?: Record<string, number>; name?: string } = {}): void {
    this.sm.handle({
      type: 'worker-connected',
      worker: id,
      info: { name: opts.name ?? id, address: `ws://${id}`, nthreads: opts.nthreads ?? 1, resources: opts.resources ?? {}, pid: 0, memoryLimit: 0 },
      now: this.now,
    });
    this.flush();
  }

  /** Submits a graph; `tickets` are the client's tickets for `wants` (default: none). */
  submit(tasks: TaskSpec[], wants: string[], client = 'c1', tickets?: number[], more = false): number {
    const id = this.nextGraph++;
    const b = new GraphBuilder();
    for (const t of tasks) b.add(t.fn, t.deps.map((d) => new KeyRef(d)), t.opts, t.key);
    const indices = wants.map((k) => b.keys.indexOf(k)).filter((i) => i >= 0);
    const existing = wants.filter((k) => !b.keys.includes(k));
    this.sm.handle({ type: 'client-message', client, msg: b.build(id, indices, existing, tickets ? Float64Array.from(tickets) : new Float64Array(indices.length).fill(-1), more), now: this.now });
    this.flush();
    return id;
  }

  /** A worker reports one task, or many in one message, finished. */
  /** Results reported so far (finish). */
  finished = 0;

  finish(worker: string, key: string | string[], opts: { nbytes?: number; duration?: number; run?: number } = {}): void {
    const keys = typeof key === 'string' ? [key] : key;
    this.finished += keys.length;
    const runs = Float64Array.from(keys, (k) => opts.run ?? this.sm.tasks.get(k)?.flight?.run ?? 0);
    const nbytes = new Float64Array(keys.length).fill(opts.nbytes ?? 8);
    const durations = new Float64Array(keys.length).fill(opts.duration ?? 0.001);
    this.sm.handle({ type: 'worker-message', worker, msg: { op: 'finished', keys, runs, nbytes, durations }, now: this.now });
    this.flush();
  }

  /** Running task `parent` put results `keys` early on `worker` (TaskContext.earlyResult). */
  early(worker: string, parent: string, keys: string[], nbytes = 8): void {
    const run = this.sm.tasks.get(parent)?.flight?.run ?? 0;
    const msg = { op: 'early' as const, parents: keys.map(() => parent), runs: Float64Array.from(keys, () => run), keys, nbytes: new Float64Array(keys.length).fill(nbytes) };
    this.sm.handle({ type: 'worker-message', worker, msg, now: this.now });
    this.flush();
  }

  /** The steals asked of `worker` since the last take (other messages to it are dropped): [key, run] pairs. */
  stealsAsked(worker: string): [string, number][] {
    return this.take(worker)
      .filter((m) => m.op === 'steal')
      .flatMap((m) => (m.keys as string[]).map((k, i) => [k, (m.runs as number[])[i] as number] as [string, number]));
  }

  /** `worker` answers steals: `released` the ones it dropped unstarted. */
  stealReply(worker: string, asked: [string, number][], released: (key: string) => boolean): void {
    const msg = { op: 'steal-reply' as const, keys: asked.map(([k]) => k), runs: Float64Array.from(asked, ([, r]) => r), released: asked.map(([k]) => released(k)) };
    this.sm.handle({ type: 'worker-message', worker, msg, now: this.now });
    this.flush();
  }

  err(worker: string, key: string, message = 'boom'): void {
    const run = this.sm.tasks.get(key)?.flight?.run ?? 0;
    this.sm.handle({ type: 'worker-message', worker, msg: { op: 'erred', key, run, error: { name: 'Error', message, stack: `Error: ${message}\n    at remote` } }, now: this.now });
    this.flush();
  }

  executing(worker: string, keys: string[]): void {
    const runs = Float64Array.from(keys, (k) => this.sm.tasks.get(k)?.flight?.run ?? 0);
    this.sm.handle({ type: 'worker-message', worker, msg: { op: 'executing', keys, runs }, now: this.now });
    this.flush();
  }

  heartbeat(worker: string): void {
    this.sm.handle({ type: 'worker-message', worker, msg: { op: 'heartbeat', memory: 0 }, now: this.now });
    this.flush();
  }

  release(keys: string[], client = 'c1'): void {
    this.sm.handle({ type: 'client-message', client, msg: { op: 'release', keys }, now: this.now });
    this.flush();
  }

  removeWorker(id: string): void {
    this.sm.handle({ type: 'worker-disconnected', worker: id, reason: 'test' });
    this.flush();
  }

  /** Time passes with the scheduler running: a tick every 500 ms, as the server sends them. */
  tick(advanceMs: number): void {
    const end = this.now + advanceMs;
    do {
      this.now = Math.min(end, this.now + 500);
      this.sm.handle({ type: 'tick', now: this.now });
    } while (this.now < end);
    this.flush();
  }

  /** Time passes with the scheduler itself stalled (no event at all), then a tick. */
  stall(ms: number): void {
    this.now += ms;
    this.sm.handle({ type: 'tick', now: this.now });
    this.flush();
  }

  state(key: string): string | undefined {
    return this.sm.tasks.get(key)?.state;
  }
}

/** A task message; `deps` are keys referenced in the arguments. */
export interface TaskSpec {
  key: string;
  deps: string[];
  opts: TaskOptions;
  fn: TaskFn;
}

/** A task whose arguments reference `deps`. */
export function task(key: string, deps: string[] = [], opts: TaskOptions = {}, fn: TaskFn = 'mod.ts#f'): TaskSpec {
  return { key, deps, opts, fn };
}
