/**
 * Randomized event sequences for the worker's state machine (fast-check):
 * tasks arrive (inputs here, on peers, or still running here), executor
 * threads report results, errors or a missing chained input, peers answer
 * fetches or fail, the scheduler frees or steals keys, a client gives back
 * the value of a task not started (fillIn). After every event the
 * machine's counts hold; once everything pending is answered, every task
 * given and not freed has been reported finished, erred or missing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WorkerState, type ExecTask, type WorkerInstruction } from '../src/worker/state-machine.ts';

const ME = 'ws://me';
const PEERS = ['ws://p0', 'ws://p1', 'ws://p2'];

type Op =
  | { op: 'compute'; deps: number[]; peerDeps: number[]; priority: number; gpu: boolean; ephemeral: boolean }
  | { op: 'result'; pick: number; kind: 'ok' | 'error' | 'requeue' | 'handed' }
  | { op: 'fetch'; pick: number; kind: 'ok' | 'null' | 'fail' }
  | { op: 'free'; pick: number }
  | { op: 'steal'; pick: number }
  | { op: 'put'; n: number }
  | { op: 'fill'; pick: number };

const ops: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('compute' as const), deps: fc.array(fc.nat(), { maxLength: 3 }), peerDeps: fc.array(fc.nat(5), { maxLength: 2 }), priority: fc.integer({ min: -1, max: 1 }), gpu: fc.boolean(), ephemeral: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('result' as const), pick: fc.nat(), kind: fc.constantFrom('ok' as const, 'ok' as const, 'error' as const, 'requeue' as const, 'handed' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('fetch' as const), pick: fc.nat(), kind: fc.constantFrom('ok' as const, 'ok' as const, 'null' as const, 'fail' as const) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('free' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('steal' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('put' as const), n: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('fill' as const), pick: fc.nat() }) },
);

class Model {
  readonly w = new WorkerState({ nthreads: 2, resources: { GPU: 1 }, address: ME });
  private next = 0;
  private run = 0;
  /** Tasks given, not freed: each must end finished, erred or missing. */
  readonly open = new Set<string>();
  /** Keys of tasks given here (any state), usable as inputs while not freed. */
  private readonly local: string[] = [];
  private readonly freed = new Set<string>();
  /** Handed to the executor, no result yet. */
  private readonly running: ExecTask[] = [];
  private readonly fetches: { peer: string; keys: string[] }[] = [];
  readonly reported = new Set<string>();
  private readonly runOf = new Map<string, number>();
  /** Tasks dropped here for a steal. */
  stolen = 0;

  take(): void {
    for (let i = 0; i < 100; i++) {
      const failed = this.absorb(this.w.takeInstructions());
      const broken = this.w.checkInvariants();
      if (broken) throw new Error(`worker bookkeeping broken: ${broken}`);
      // As the scheduler does: a task that erred or missed an input errs its dependents, and frees those it sent here.
      const doomed = this.dependentsOf(failed);
      if (doomed.length === 0) return;
      for (const k of doomed) {
        this.freed.add(k);
        this.open.delete(k);
      }
      this.w.free(doomed);
    }
  }

  /** Open tasks here that depend, directly or not, on `keys`. */
  private dependentsOf(keys: string[]): string[] {
    const bad = new Set(keys);
    const out: string[] = [];
    for (const k of this.local) {
      if (!this.open.has(k) || this.reported.has(k)) continue;
      if ((this.depsOf.get(k) ?? []).some((d) => bad.has(d))) {
        bad.add(k);
        out.push(k);
      }
    }
    return out;
  }

  /** Records what the machine asked for; returns the keys it reported erred or missing. */
  private absorb(ins: WorkerInstruction[]): string[] {
    const failed: string[] = [];
    for (const i of ins) {
      if (i.type === 'execute') this.running.push(...i.tasks);
      else if (i.type === 'fetch') this.fetches.push({ peer: i.peer, keys: [...i.keys] });
      else if (i.type === 'send') {
        const m = i.msg as { op: string; keys?: string[]; key?: string };
        if (m.op === 'finished') for (const k of m.keys ?? []) this.reported.add(k);
        // Stolen: dropped here unstarted; the scheduler runs it elsewhere.
        if (m.op === 'steal-reply') {
          const released = (i.msg as { released: boolean[] }).released;
          (m.keys ?? []).forEach((k, j) => {
            if (!released[j]) return;
            this.stolen++;
            this.freed.add(k);
            this.open.delete(k);
          });
        }
        if ((m.op === 'erred' || m.op === 'missing') && m.key) {
          this.reported.add(m.key);
          failed.push(m.key);
        }
      }
    }
    return failed;
  }

  apply(o: Op): void {
    const w = this.w;
    switch (o.op) {
      case 'compute': {
        const key = `t${this.next++}`;
        const live = this.local.filter((k) => !this.freed.has(k));
        const deps: string[] = [];
        const who: string[][] = [];
        for (const d of o.deps) {
          const k = live[d % Math.max(1, live.length)];
          if (k === undefined || deps.includes(k)) continue;
          deps.push(k);
          who.push([ME]);
        }
        for (const p of o.peerDeps) {
          const k = `peer-${p}`;
          if (deps.includes(k)) continue;
          deps.push(k);
          who.push(p % 2 === 0 ? [PEERS[0] as string, PEERS[1] as string] : [PEERS[2] as string]);
        }
        this.runOf.set(key, this.run + 1);
        w.compute({ key, run: ++this.run, fn: 0, args: new Uint8Array([0x90]), order: this.next, priority: o.priority, deps, who, resources: o.gpu ? { GPU: 1 } : null, ephemeral: o.ephemeral });
        this.local.push(key);
        this.remember(key, deps);
        this.open.add(key);
        break;
      }
      case 'result': {
        if (this.running.length === 0) return;
        const t = this.running.splice(o.pick % this.running.length, 1)[0] as ExecTask;
        if (o.kind === 'requeue' && t.after !== null) w.executed([{ key: t.key, run: t.run, task: t, duration: 0, requeue: true }]);
        // As the thread does: a value only the task behind it needs goes to that task, not back here.
        else if (o.kind === 'handed' && t.keep && t.ephemeral) w.executed([{ key: t.key, run: t.run, task: t, duration: 0.001, handedOn: 3 }]);
        else if (o.kind === 'error') w.executed([{ key: t.key, run: t.run, task: t, duration: 0.001, error: { name: 'Error', message: 'boom' } }]);
        else w.executed([{ key: t.key, run: t.run, task: t, duration: 0.001, bytes: new Uint8Array([1, 2, 3]) }]);
        break;
      }
      case 'fetch': {
        if (this.fetches.length === 0) return;
        const f = this.fetches.splice(o.pick % this.fetches.length, 1)[0] as { peer: string; keys: string[] };
        if (o.kind === 'fail') w.fetchFailed(f.peer, f.keys);
        else w.fetched(f.peer, f.keys, f.keys.map(() => (o.kind === 'ok' ? new Uint8Array([9]) : null)));
        break;
      }
      case 'free': {
        // The scheduler frees a key once nothing it sent here still needs it: one no later task was given.
        const candidates = this.local.filter((k) => !this.freed.has(k) && !this.dependedOn(k));
        const k = candidates[o.pick % Math.max(1, candidates.length)];
        if (k === undefined) return;
        this.freed.add(k);
        this.open.delete(k);
        w.free([k]);
        break;
      }
      case 'steal': {
        // The scheduler steals a task whose inputs are in memory and that no later task here waits on (it takes those back).
        const candidates = this.local.filter((k) => this.open.has(k) && !this.reported.has(k) && !this.dependedOn(k));
        const k = candidates[o.pick % Math.max(1, candidates.length)];
        if (k === undefined) return;
        w.steal([k], [this.runOf.get(k) as number]);
        break;
      }
      case 'put':
        w.put([`scattered-${o.n}`], [new Uint8Array(o.n + 1)]);
        break;
      case 'fill': {
        // A client gives back a value for a task given here (a lost result): taken only if the task has not started.
        const candidates = this.local.filter((k) => this.open.has(k) && !this.reported.has(k));
        const k = candidates[o.pick % Math.max(1, candidates.length)];
        if (k === undefined) return;
        w.fillIn(k, new Uint8Array([9]));
        break;
      }
    }
    this.take();
  }

  private dependedOn(k: string): boolean {
    return this.local.some((x) => x !== k && !this.freed.has(x) && this.open.has(x) && !this.reported.has(x) && this.depsOf.get(x)?.includes(k) === true);
  }

  /** Deps of each task given (for `dependedOn`). */
  private readonly depsOf = new Map<string, string[]>();

  /** Answers everything pending (results, fetches) until nothing is left. */
  settle(): void {
    for (let round = 0; round < 10_000 && (this.running.length > 0 || this.fetches.length > 0); round++) {
      const f = this.fetches.shift();
      if (f) this.w.fetched(f.peer, f.keys, f.keys.map(() => new Uint8Array([9])));
      const t = this.running.shift();
      if (t) this.w.executed([{ key: t.key, run: t.run, task: t, duration: 0.001, bytes: new Uint8Array([1]) }]);
      this.take();
    }
  }

  remember(key: string, deps: string[]): void {
    this.depsOf.set(key, deps);
  }
}

describe('the worker state machine under random event sequences', () => {
  it('keeps its counts after every event, and reports every task it was given and not freed', () => {
    let reported = 0;
    let stolen = 0;
    fc.assert(
      fc.property(fc.array(ops, { minLength: 5, maxLength: 80, size: 'max' }), (seq) => {
        const m = new Model();
        for (const o of seq) m.apply(o);
        m.settle();
        for (const k of m.open) expect(m.reported.has(k), `task ${k} was never reported`).toBe(true);
        reported += m.reported.size;
        stolen += m.stolen;
      }),
      { numRuns: 300 },
    );
    expect(reported).toBeGreaterThan(300);
    expect(stolen).toBeGreaterThan(20);
  });
});
