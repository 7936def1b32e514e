/**
 * Integration: a real LocalCluster (scheduler + 2 worker processes over
 * loopback) shared by the tests in this file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client} from '../src/index.ts';
import { DependencyError, GraphError, InlineFunctionError, LocalCluster, ref, TaskError, CancelledError, type Graph, type TaskDef } from '../src/index.ts';
import { fn, waitFor } from './helpers/util.ts';

let seq = 0;
/** A fresh prefix per use: keys of this file's tests never meet. */
const p0 = (): string => `${process.pid}-${seq++}`;

let cluster: LocalCluster;
let client: Client;

beforeAll(async () => {
  cluster = await LocalCluster.start({ workers: 2, threadsPerWorker: 1 });
  client = await cluster.client();
});

afterAll(async () => {
  await client?.close();
  await cluster?.close();
});

describe('futures', () => {
  it('runs module functions and inline functions; futures become values anywhere in the arguments', async () => {
    const x = client.submit<number>(fn('inc'), 1);
    expect(await x).toBe(2);
    const y = client.submit((o: { a: number; list: number[] }) => o.a + o.list.reduce((s, v) => s + v, 0), { a: x, list: [x, 10] });
    expect(await y.result()).toBe(14);
    expect(y.status).toBe('finished');
    const squares = client.map((n: number) => n * n, [1, 2, 3, 4]);
    expect(await client.gather(squares)).toEqual([1, 4, 9, 16]);
  });

  it('keeps rich values intact: Map, Set, Date, bigint, typed arrays, undefined', async () => {
    const value = { m: new Map([['k', 1]]), s: new Set([1, 2]), d: new Date(5), b: 2n ** 70n, f: new Float64Array([1.5, 2.5]), u: undefined };
    const [out] = await client.gather([client.submit(fn('echo'), value)]);
    expect(out).toEqual(value);
    expect((out as typeof value).f).toBeInstanceOf(Float64Array);
  });

  it('gives the same key to the same call (deduplication) and fresh keys with pure: false', () => {
    const a = client.submit(fn('inc'), 41);
    const b = client.submit(fn('inc'), 41);
    const c = client.submitWith({ pure: false }, fn('inc'), 41);
    expect(a.key).toBe(b.key);
    expect(c.key).not.toBe(a.key);
    expect(a.key.startsWith('inc-')).toBe(true);
  });

  it('releases the results of a get on the cluster once it has returned them', async () => {
    const stored = async (): Promise<number> => (await client.workers()).reduce((s, w) => s + w.stored, 0);
    const graph: Graph = {};
    for (let i = 0; i < 40; i++) graph[`freed-${i}`] = { fn: fn('inc'), args: [i] };
    expect((await client.get(graph, Object.keys(graph)))[39]).toBe(40);
    // Asked at once, the workers still hold the 40 results (other tests' work may add to the count).
    const held = await stored();
    expect(held).toBeGreaterThanOrEqual(40);
    // The releases go out on a later turn; each round trip gives them one.
    let now = held;
    for (let i = 0; i < 50 && now > held - 40; i++) now = await stored();
    expect(now).toBe(held - 40);
  });

  it('computes the same graph twice in a row (a released key held again stays held)', async () => {
    const graph: Graph = {};
    for (let i = 0; i < 50; i++) graph[`again-${i}`] = { fn: fn('inc'), args: [i] };
    const keys = Object.keys(graph);
    const first = await client.get(graph, keys);
    const second = await client.get(graph, keys);
    expect(second).toEqual(first);
    expect(second[49]).toBe(50);
  });

  it('scatters data to workers and uses it as an argument', async () => {
    const [big] = await client.scatter([new Uint8Array(100_000).fill(3)]);
    const sum = client.submit((b: Uint8Array) => b.reduce((s, v) => s + v, 0), big);
    expect(await sum).toBe(300_000);
  });
});

describe('graphs', () => {
  it('computes random DAGs with the same results as a plain local evaluation', async () => {
    let seed = 12345;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 4; round++) {
      const n = 50 + Math.floor(rand() * 250);
      const graph: Graph = {};
      const expected: number[] = [];
      for (let i = 0; i < n; i++) {
        const deps = i === 0 ? [] : Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * i));
        const c = Math.floor(rand() * 100);
        if (rand() < 0.5) {
          graph[`g${round}-${i}`] = { fn: fn('add'), args: [c, ...deps.map((d) => ref(`g${round}-${d}`))] };
        } else {
          // Inline function; dependencies nested inside an object argument.
          graph[`g${round}-${i}`] = { fn: (o: { c: number; xs: number[] }) => o.xs.reduce((s, v) => (s * 31 + v) % 1_000_003, o.c), args: [{ c, xs: deps.map((d) => ref(`g${round}-${d}`)) }] };
        }
        const xs = deps.map((d) => expected[d] as number);
        expected.push(graph[`g${round}-${i}`]?.fn === fn('add') ? xs.reduce((a, b) => a + b, c) : xs.reduce((s, v) => (s * 31 + v) % 1_000_003, c));
      }
      const keys = Object.keys(graph);
      const out = await client.get(graph, keys);
      expect(out).toEqual(expected);
    }
  });

  it('runs a long chain of tasks that mutate their input, with exact results', async () => {
    // Fast steps: the chain is sent ahead to one worker and kept on one thread.
    const graph: Graph = { 'm-0': { fn: (n: number) => [n], args: [0] } };
    for (let i = 1; i < 600; i++) graph[`m-${i}`] = { fn: (xs: number[], i: number) => (xs.push(i), xs), args: [ref(`m-${i - 1}`), i] };
    // A side branch reads a middle step after it was mutated further down the chain.
    graph['side'] = { fn: (xs: number[]) => xs.length, args: [ref('m-300')] };
    const [last, side] = await client.get(graph, ['m-599', 'side']);
    expect(last).toEqual(Array.from({ length: 600 }, (_, i) => i));
    expect(side).toBe(301);
  });

  it('sends large graphs in parts where it may: a map, independent tasks, and a reduction over many leaves', async () => {
    const n = 5000; // several parts
    const flat: Graph = {};
    for (let i = 0; i < n; i++) flat[`flat-${i}`] = { fn: fn('inc'), args: [i] };
    expect(await client.get(flat, Object.keys(flat))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // Some keys only: the tasks not asked for go with the rest, in one message.
    const some: Graph = {};
    for (let i = 0; i < n; i++) some[`some-${i}`] = { fn: fn('inc'), args: [i] };
    expect(await client.get(some, ['some-4999', 'some-10'])).toEqual([5000, 11]);
    // Leaves first, then the sums: the leaves are not asked for, so nothing is sent before the sums.
    const tree: Graph = {};
    for (let i = 0; i < 3000; i++) tree[`leaf-${i}`] = { fn: fn('inc'), args: [i] };
    for (let i = 0; i < 3000; i += 2) tree[`pair-${i}`] = { fn: fn('add'), args: [ref(`leaf-${i}`), ref(`leaf-${i + 1}`)] };
    tree['total'] = { fn: (...xs: number[]) => xs.reduce((a, b) => a + b, 0), args: Array.from({ length: 1500 }, (_, j) => ref(`pair-${2 * j}`)) };
    expect(await client.get(tree, 'total')).toBe((3000 * 3001) / 2);
    const mapped = client.map((x: number) => x * 2, Array.from({ length: n }, (_, i) => i));
    expect(await client.gather(mapped)).toEqual(Array.from({ length: n }, (_, i) => 2 * i));
    for (const f of mapped) f.release();
  });

  it('takes a graph as a Map as well as an object: values, outputs and parts alike', async () => {
    const n = 3000; // several parts
    const flat = new Map<string, TaskDef>();
    for (let i = 0; i < n; i++) flat.set(`map-flat-${i}`, { fn: fn('inc'), args: [i] });
    expect(await client.get(flat, [...flat.keys()])).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const sums = new Map<string, TaskDef>([
      ['map-a', { fn: fn('inc'), args: [1] }],
      ['map-b', { fn: fn('add'), args: [ref('map-a'), 10] }],
      ['map-c', { fn: fn('add'), args: [ref('map-b'), ref('map-a')] }],
    ]);
    // No keys: the outputs (only map-c), by key.
    expect(await client.get(sums)).toEqual({ 'map-c': 14 });
    const futures = await client.compute(sums, { keys: ['map-b'] });
    expect(await futures['map-b']).toBe(12);
    await expect(client.compute(new Map([['map-bad', { args: [1] } as unknown as TaskDef]]))).rejects.toThrow(/map-bad needs a fn/);
  });

  it('gets many keys a chunk at a time, in order, and fails at once on an error in a later chunk', async () => {
    const n = 45_000; // three chunks of the fetch
    const big: Graph = {};
    for (let i = 0; i < n; i++) big[`chunked-${i}`] = { fn: fn('inc'), args: [i] };
    const values = await client.get(big, Object.keys(big));
    expect(values.length).toBe(n);
    expect(values.every((v, i) => v === i + 1)).toBe(true);
    // The first chunk waits on a task no worker can run (it stays pending for 30 s);
    // the last holds a failure, which must not wait for it.
    const slow = client.submitWith({ pure: false, resources: { TPU: 1 } }, fn('inc'), 1);
    const failing: Graph = {};
    for (let i = 0; i < n; i++) failing[`chunked-bad-${i}`] = i === n - 1 ? { fn: fn('fail'), args: ['last chunk'] } : { fn: fn('inc'), args: [i] };
    await expect(client.get(failing, [slow.key, ...Object.keys(failing)])).rejects.toThrow(/last chunk/);
    expect(slow.status).toBe('pending');
    await slow.cancel();
  });

  it('rejects a graph sent in parts when a later part conflicts, and releases the parts accepted', async () => {
    const held = await client.compute({ 'part-conflict': { fn: fn('inc'), args: [1] } });
    const graph: Graph = {};
    for (let i = 0; i < 5000; i++) graph[`streamed-${i}`] = { fn: fn('inc'), args: [i] };
    graph['part-conflict'] = { fn: fn('inc'), args: [2] };
    const err = await client.get(graph, Object.keys(graph)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).keys).toEqual(['part-conflict']);
    // The held future is untouched; the tasks of the parts accepted are released (once the client's releases go out).
    expect(await held['part-conflict']).toBe(2);
    await new Promise((resolve) => setImmediate(resolve));
    await expect(client.futureOf('streamed-0')).rejects.toThrow(/does not know key streamed-0/);
  });

  it('fails a graph sent in parts when a later task cannot be built, and releases the parts sent', async () => {
    const graph: Graph = {};
    for (let i = 0; i < 5000; i++) graph[`unbuilt-${i}`] = { fn: fn('inc'), args: [i] };
    graph['unbuilt-4000'] = { args: [1] } as unknown as Graph[string];
    const err = await client.get(graph, Object.keys(graph)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).keys).toEqual(['unbuilt-4000']);
    await new Promise((resolve) => setImmediate(resolve));
    await expect(client.futureOf('unbuilt-0')).rejects.toThrow(/does not know key unbuilt-0/);
  });

  it('refuses keys the wire cannot carry (empty, too long, a lone surrogate) with a GraphError, and goes on', async () => {
    const many: Graph = {};
    for (let i = 0; i < 40; i++) many[`fine-${i}`] = { fn: fn('inc'), args: [i] };
    for (const bad of ['', 'x'.repeat(5000), 'half-\ud800-pair']) {
      const err = await client.get({ ...many, [bad]: { fn: fn('inc'), args: [1] } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GraphError);
      expect((err as GraphError).keys).toEqual([bad]);
    }
    await expect(client.compute({ d: { fn: fn('inc'), args: [ref('lone-\udc00')] } })).rejects.toThrow(/lone UTF-16 surrogate/);
    // A well-formed pair is fine; the connection is still up.
    expect(await client.get({ 'pair-\ud83d\ude00': { fn: fn('inc'), args: [41] } }, 'pair-\ud83d\ude00')).toBe(42);
  });

  it('rejects a cycle and a missing dependency at submission, naming the keys', async () => {
    await expect(client.compute({ a: { fn: fn('inc'), args: [ref('b')] }, b: { fn: fn('inc'), args: [ref('a')] } })).rejects.toThrow(/cycle: (a -> b -> a|b -> a -> b)/);
    const err = await client.compute({ c: { fn: fn('inc'), args: [ref('nowhere')] } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).message).toContain('c -> nowhere');
  });

  it('rejects a key resubmitted with a different definition', async () => {
    const futures = await client.compute({ 'fixed-key': { fn: fn('inc'), args: [1] } });
    await expect(client.compute({ 'fixed-key': { fn: fn('inc'), args: [2] } })).rejects.toThrow(/different definition: fixed-key/);
    expect(await futures['fixed-key']).toBe(2);
  });
});

describe('errors', () => {
  it('rejects with the remote error and stack; dependents fail naming the failed task', async () => {
    const bad = client.submitWith({ key: 'bad-task' }, fn('fail'), 'no such thing');
    const err = await bad.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).remoteName).toBe('RangeError');
    expect((err as TaskError).message).toContain('no such thing');
    expect((err as TaskError).remoteStack).toMatch(/fail .*fixtures\/tasks\.ts/);
    expect(bad.status).toBe('error');
    const dependent = client.submit(fn('inc'), bad);
    const derr = await dependent.result().catch((e: unknown) => e);
    expect(derr).toBeInstanceOf(DependencyError);
    expect((derr as DependencyError).failedKey).toBe('bad-task');
  });

  it('refuses an inline function that uses an outer variable, naming it', () => {
    const offset = 3;
    expect(() => client.submit((x: number) => x + offset, 1)).toThrow(InlineFunctionError);
    expect(() => client.submit((x: number) => x + offset, 1)).toThrow(/'offset'/);
  });

  it('reports a missing module or export clearly', async () => {
    await expect(client.submit('./no/such/module.ts#f').result()).rejects.toThrow(/cannot import task module/);
    await expect(client.submit(`${fn('inc').split('#')[0]}#nope`).result()).rejects.toThrow(/no exported function 'nope'/);
  });

  it('retries a failing task', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-retries-'));
    try {
      expect(await client.submitWith({ retries: 2 }, fn('flaky'), join(dir, 'count'), 2)).toBe('ok');
      await expect(client.submitWith({ retries: 1 }, fn('flaky'), join(dir, 'count2'), 2).result()).rejects.toThrow(/flaky failure 2/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('cancels a running future', async () => {
    const slow = client.submitWith({ pure: false }, fn('slowInc'), 1, 30_000);
    const waiting = slow.result();
    await slow.cancel();
    await expect(waiting).rejects.toBeInstanceOf(CancelledError);
    expect(slow.status).toBe('cancelled');
  });
});

describe('placement and data movement', () => {
  it('runs dependents where their data is, and moves data worker to worker when it must', async () => {
    const [w0, w1] = cluster.workers;
    if (!w0 || !w1) throw new Error('need two workers');
    const before = await client.workerMetrics();
    // 2 MB made on each worker; the dependent of each should run beside it.
    const g = await client.compute(
      {
        'big-0': { fn: fn('bytes'), args: [2_000_000, 1], workers: [w0.name] },
        'big-1': { fn: fn('bytes'), args: [2_000_000, 2], workers: [w1.name] },
        'near-0': { fn: fn('where'), args: [ref('big-0')] },
        'near-1': { fn: fn('where'), args: [ref('big-1')] },
        // Pinned to w1, needs big-0 from w0: a peer-to-peer transfer.
        across: { fn: fn('where'), args: [ref('big-0'), ref('big-1')], workers: [w1.name] },
      },
      { keys: ['near-0', 'near-1', 'across'] },
    );
    const [near0, near1, across] = (await client.gather([g['near-0'], g['near-1'], g['across']].map((f) => f as NonNullable<typeof f>))) as { pid: number; inputBytes: number }[];
    expect(near0?.pid).toBe(w0.pid);
    expect(near1?.pid).toBe(w1.pid);
    expect(across).toEqual({ pid: w1.pid, inputBytes: 4_000_000 });
    const after = await client.workerMetrics();
    const sent = (a: string): number => (after[a]?.bytesSentToPeers ?? 0) - (before[a]?.bytesSentToPeers ?? 0);
    expect(sent(w0.address)).toBeGreaterThanOrEqual(2_000_000);
    expect(sent(w1.address)).toBe(0);
  });

  it('keeps serving data and heartbeating while a long CPU-bound task runs', async () => {
    const [w0] = cluster.workers;
    if (!w0) throw new Error('need a worker');
    const ready = client.submitWith({ workers: [w0.name], pure: false }, fn('bytes'), 10, 7);
    await ready.done();
    const spin = client.submitWith({ workers: [w0.name], pure: false }, fn('busy'), 2000);
    // While w0's only thread spins, its data server still answers.
    const start = performance.now();
    expect(await ready).toEqual(new Uint8Array(10).fill(7));
    expect(performance.now() - start).toBeLessThan(1000);
    expect(await spin).toBeGreaterThan(0);
  });
});

describe('task events', () => {
  it('delivers what a task publishes to subscribers, in order, before its result', async () => {
    const got: unknown[] = [];
    const unsubscribe = client.subscribe('counting', (d) => got.push(d));
    const f = client.submitWith({ pure: false }, fn('publishes'), 'counting', 50);
    expect(await f).toBe(50);
    // The result is reported after the events: all 50 are in.
    expect(got).toEqual(Array.from({ length: 50 }, (_, i) => ({ i })));
    unsubscribe();
    const other = client.submitWith({ pure: false }, fn('publishes'), 'counting', 3);
    expect(await other).toBe(3);
    expect(got).toHaveLength(50);
  });

  it('cancelling a running task aborts its signal; the task sees it and stops', async () => {
    const said: unknown[] = [];
    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    let ended!: () => void;
    const isEnded = new Promise<void>((r) => (ended = r));
    const unsubscribe = client.subscribe('cancel-me', (d) => {
      said.push(d);
      if (d === 'started') started();
      else ended();
    });
    const f = client.submitWith({ pure: false }, fn('untilCancelled'), 'cancel-me');
    await isStarted;
    const t0 = performance.now();
    await client.cancel([f]);
    await isEnded;
    expect(said).toEqual(['started', 'aborted']);
    expect(performance.now() - t0).toBeLessThan(5000);
    unsubscribe();
  });

  it('a result a running task puts early is in memory once a task for it is submitted; those nobody took are dropped with its result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-early-'));
    try {
      const stored = async (): Promise<number> => Object.values(await client.workerMetrics()).reduce((n, m) => n + m.stored, 0);
      const before = await stored();
      let heard!: (key: string) => void;
      const first = new Promise<string>((r) => (heard = r));
      const unsubscribe = client.subscribe('early', (k) => heard(k as string));
      const flag = join(dir, 'flag');
      const p = client.submitWith({ pure: false }, fn('putsEarly'), 'early', `early-${p0()}-`, 3, flag);
      const key = await first;
      const item = (await client.compute(new Map<string, TaskDef>([[key, { fn: fn('pickItem'), args: [ref(p.key), 0] }]]), { keys: [key] }))[key];
      if (!item) throw new Error('no future');
      // Its value while the task that put it still runs (it waits for the flag): nothing computed it.
      expect(await item).toEqual({ i: 0 });
      expect(p.status).toBe('pending');
      writeFileSync(flag, 'go');
      expect(await p).toEqual({ 0: { i: 0 }, 1: { i: 1 }, 2: { i: 2 } });
      unsubscribe();
      item.release();
      p.release();
      // The two values nobody took went with the result of the task that put them.
      await waitFor(async () => (await stored()) === before, 10_000, 'the workers to hold what they held before');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad topic with a clear error', () => {
    expect(() => client.subscribe('', () => {})).toThrow(/topic must be a string of 1 to 256/);
  });
});
