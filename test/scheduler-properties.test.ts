/**
 * Randomized event sequences for the scheduler's state machine (fast-check):
 * clients submit small graphs (whole or in parts), release keys and leave;
 * workers join, finish or fail tasks, put results early, answer steals
 * (some stale), and die; clients give back values of keys (restore), wanted
 * or not, in any state; the clock ticks and stalls.
 * After every event the machine's count invariants hold (the harness checks
 * them), and once the sequence is over, a healthy worker brings every
 * wanted key to memory or to an error: nothing is stuck.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Harness, task, type TaskSpec } from './helpers/scheduler-harness.ts';

type Op =
  | { op: 'submit'; client: number; size: number; deps: number[]; wantEvery: number; parts: boolean }
  | { op: 'release'; client: number; pick: number }
  | { op: 'leave'; client: number }
  | { op: 'join'; worker: number; threads: number }
  | { op: 'die'; worker: number }
  | { op: 'finish'; pick: number; many: boolean }
  | { op: 'fail'; pick: number }
  | { op: 'early'; pick: number; claim: boolean }
  | { op: 'answer'; worker: number; release: number }
  | { op: 'restore'; client: number; pick: number; worker: number }
  | { op: 'tick'; ms: number }
  | { op: 'stall'; ms: number };

const ops: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('submit' as const), client: fc.nat(2), size: fc.integer({ min: 1, max: 8 }), deps: fc.array(fc.nat(), { maxLength: 16 }), wantEvery: fc.integer({ min: 1, max: 4 }), parts: fc.boolean() }),
  fc.record({ op: fc.constant('release' as const), client: fc.nat(2), pick: fc.nat() }),
  fc.record({ op: fc.constant('leave' as const), client: fc.nat(2) }),
  fc.record({ op: fc.constant('join' as const), worker: fc.nat(3), threads: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ op: fc.constant('die' as const), worker: fc.nat(3) }),
  fc.record({ op: fc.constant('finish' as const), pick: fc.nat(), many: fc.boolean() }),
  fc.record({ op: fc.constant('fail' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('early' as const), pick: fc.nat(), claim: fc.boolean() }),
  fc.record({ op: fc.constant('answer' as const), worker: fc.nat(3), release: fc.nat() }),
  fc.record({ op: fc.constant('restore' as const), client: fc.nat(2), pick: fc.nat(), worker: fc.nat(3) }),
  fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
  fc.record({ op: fc.constant('stall' as const), ms: fc.integer({ min: 0, max: 30_000 }) }),
);

/** The processing tasks a worker could really report (their inputs exist), in key order. */
function runnable(h: Harness): { key: string; worker: string }[] {
  const out: { key: string; worker: string }[] = [];
  for (const ts of h.sm.tasks.values()) {
    if (ts.state !== 'processing' || !ts.flight) continue;
    if (ts.deps.every((d) => d.state === 'memory')) out.push({ key: ts.key, worker: ts.flight.worker.id });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

class Model {
  // Steals of tasks of any length, free of latency: the model's tasks are short, and the steal protocol is to be exercised.
  readonly h = new Harness({ heartbeatTimeoutMs: 10_000, noWorkerTimeoutMs: 60_000, stealMinDurationSeconds: 0, stealLatencySeconds: 0 });
  private graphs = 0;
  readonly clients = new Set<string>();
  readonly workers = new Set<string>();
  /** Keys each client wants. */
  readonly wants = new Map<string, Set<string>>();
  /** Values given back for keys not in memory that their client wants (the ones that change a state). */
  restored = 0;

  client(i: number): string {
    const id = `c${i}`;
    if (!this.clients.has(id)) {
      this.h.client(id);
      this.clients.add(id);
      this.wants.set(id, new Set());
    }
    return id;
  }

  apply(o: Op): void {
    const h = this.h;
    switch (o.op) {
      case 'submit': {
        const c = this.client(o.client);
        const g = this.graphs++;
        const known = [...h.sm.tasks.keys()].filter((k) => h.sm.tasks.get(k)?.fn !== null);
        const tasks: TaskSpec[] = [];
        for (let i = 0; i < o.size; i++) {
          const pool = [...known, ...tasks.map((t) => t.key)];
          const deps = pool.length === 0 ? [] : [...new Set(o.deps.slice(0, 2 + (i % 2)).map((d) => pool[d % pool.length] as string))];
          tasks.push(task(`g${g}-${i}`, deps));
        }
        const wanted = tasks.filter((_, i) => i % o.wantEvery === 0 || i === tasks.length - 1).map((t) => t.key);
        if (o.parts && tasks.length > 1) {
          // Two parts: the first held (more), the second the last.
          const cut = Math.ceil(tasks.length / 2);
          h.submit(tasks.slice(0, cut), wanted.filter((k) => tasks.slice(0, cut).some((t) => t.key === k)), c, undefined, true);
          h.submit(tasks.slice(cut), wanted.filter((k) => tasks.slice(cut).some((t) => t.key === k)), c);
        } else h.submit(tasks, wanted, c);
        for (const k of wanted) this.wants.get(c)?.add(k);
        break;
      }
      case 'release': {
        const c = `c${o.client}`;
        const mine = [...(this.wants.get(c) ?? [])];
        if (!this.clients.has(c) || mine.length === 0) return;
        const key = mine[o.pick % mine.length] as string;
        this.wants.get(c)?.delete(key);
        h.release([key], c);
        break;
      }
      case 'leave': {
        const c = `c${o.client}`;
        if (!this.clients.has(c)) return;
        h.sm.handle({ type: 'client-disconnected', client: c });
        h.tick(0);
        this.clients.delete(c);
        this.wants.delete(c);
        break;
      }
      case 'join': {
        const w = `w${o.worker}`;
        if (this.workers.has(w)) return;
        h.worker(w, { nthreads: o.threads });
        this.workers.add(w);
        break;
      }
      case 'die': {
        const w = `w${o.worker}`;
        if (!this.workers.has(w)) return;
        h.removeWorker(w);
        this.workers.delete(w);
        break;
      }
      case 'finish': {
        const r = runnable(h);
        if (r.length === 0) return;
        const first = r[o.pick % r.length] as { key: string; worker: string };
        const same = o.many ? r.filter((x) => x.worker === first.worker) : [first];
        h.finish(first.worker, same.map((x) => x.key));
        break;
      }
      case 'fail': {
        const r = runnable(h);
        if (r.length === 0) return;
        const t = r[o.pick % r.length] as { key: string; worker: string };
        h.err(t.worker, t.key);
        break;
      }
      case 'early': {
        // A running task puts a result of a task that takes it; a client may submit that task at once.
        const r = runnable(h);
        if (r.length === 0) return;
        const t = r[o.pick % r.length] as { key: string; worker: string };
        const key = `${t.key}#e${this.graphs++}`;
        h.early(t.worker, t.key, [key]);
        if (!o.claim) return;
        const c = this.client(0);
        h.submit([task(key, [t.key])], [key], c);
        expect(h.state(key)).toBe('memory');
        this.wants.get(c)?.add(key);
        break;
      }
      case 'answer': {
        // A worker answers the steals asked of it (some may be stale by now), dropping some of them.
        const w = `w${o.worker}`;
        if (!this.workers.has(w)) return;
        const asked = h.stealsAsked(w);
        if (asked.length === 0) return;
        h.stealReply(w, asked, (k) => (k.length + o.release) % 2 === 0);
        break;
      }
      case 'restore': {
        // A client puts a value of some key on a worker and says so: a key it wants (lost, being computed, in memory) or not.
        const c = [...this.clients][o.client % Math.max(1, this.clients.size)] ?? '';
        const w = [...this.workers][o.worker % Math.max(1, this.workers.size)] ?? '';
        // Mostly a key it wants (its value lost, or being computed), else any key.
        const mine = [...(this.wants.get(c) ?? [])].filter((k) => h.sm.tasks.has(k));
        const keys = o.pick % 4 !== 0 && mine.length > 0 ? mine : [...h.sm.tasks.keys()].sort();
        if (!this.clients.has(c) || !this.workers.has(w) || keys.length === 0) return;
        const key = keys[Math.floor(o.pick / 4) % keys.length] as string;
        if (this.wants.get(c)?.has(key) && h.state(key) !== 'memory' && h.state(key) !== 'erred') this.restored++;
        h.sm.handle({ type: 'client-message', client: c, msg: { op: 'restore', keys: [key], nbytes: [8], worker: `ws://${w}` }, now: h.now });
        h.tick(0);
        break;
      }
      case 'tick':
        h.tick(o.ms);
        break;
      case 'stall':
        h.stall(o.ms);
        break;
    }
    // Workers the scheduler dropped (heartbeat) are gone for the model too.
    for (const w of [...this.workers]) if (!h.sm.workers.has(w)) this.workers.delete(w);
  }

  /** A healthy worker and results for everything runnable, until nothing is left to run. */
  settle(): void {
    const h = this.h;
    if (!this.workers.has('w-final')) {
      h.worker('w-final', { nthreads: 4 });
      this.workers.add('w-final');
    }
    for (let round = 0; round < 10_000; round++) {
      for (const w of this.workers) {
        h.heartbeat(w);
        // Steals asked are answered, every task given up (it had not started).
        const asked = h.stealsAsked(w);
        if (asked.length > 0) h.stealReply(w, asked, () => true);
      }
      const r = runnable(h);
      if (r.length === 0) break;
      for (const t of r) h.finish(t.worker, t.key);
    }
  }
}

describe('the scheduler state machine under random event sequences', () => {
  it('keeps its counts after every event, and leaves no wanted key stuck', () => {
    let wanted = 0;
    let computed = 0;
    let stolen = 0;
    let restored = 0;
    fc.assert(
      fc.property(fc.array(ops, { minLength: 5, maxLength: 60, size: 'max' }), (seq) => {
        const m = new Model();
        for (const o of seq) m.apply(o);
        m.settle();
        restored += m.restored;
        for (const keys of m.wants.values()) wanted += keys.size;
        computed += m.h.finished;
        stolen += m.h.sm.stealCounts().moved;
        for (const [, keys] of m.wants) {
          for (const k of keys) {
            const st = m.h.state(k);
            expect(st === 'memory' || st === 'erred', `wanted key ${k} is ${st}`).toBe(true);
          }
        }
        // Nothing is processing once everything runnable ran.
        expect([...m.h.sm.tasks.values()].filter((t) => t.state === 'processing')).toEqual([]);
      }),
      { numRuns: 300 },
    );
    // The sequences did exercise the machine: many keys wanted, many results reported.
    expect(wanted).toBeGreaterThan(100);
    expect(computed).toBeGreaterThan(200);
    expect(stolen).toBeGreaterThan(5);
    expect(restored).toBeGreaterThan(40);
  });

  it('forgets every task once every client has left', () => {
    fc.assert(
      fc.property(fc.array(ops, { minLength: 5, maxLength: 40, size: 'max' }), (seq) => {
        const m = new Model();
        for (const o of seq) m.apply(o);
        m.settle();
        for (const c of [...m.clients]) m.apply({ op: 'leave', client: Number(c.slice(1)) });
        expect(m.h.sm.tasks.size).toBe(0);
        for (const w of m.h.sm.workers.values()) expect(w.processing).toBe(0);
      }),
      { numRuns: 200 },
    );
  });
});
