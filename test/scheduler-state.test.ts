import { describe, expect, it } from 'vitest';
import { Harness, task, type Msg } from './helpers/scheduler-harness.ts';
import { GraphBuilder } from '../src/client/graph.ts';

const ops = (msgs: Msg[]): string[] => msgs.map((m) => m.op);
const keysOf = (msgs: Msg[]): string[] => msgs.map((m) => m.key as string);

describe('graph submission', () => {
  it('accepts a graph and places a dependent only where its input is, or will be', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.worker('w2');
    h.submit([task('a'), task('b', ['a'])], ['b']);
    expect(ops(h.take('c1'))).toEqual(['graph-ok']);
    // b's only input is being computed on a's worker: b goes along, to wait there for it.
    const onW1 = h.computes('w1');
    const onW2 = h.computes('w2');
    const [home, other] = onW1.length > 0 ? [onW1, onW2] : [onW2, onW1];
    expect(keysOf(home)).toEqual(['a', 'b']);
    expect(other).toHaveLength(0);
    const worker = home === onW1 ? 'w1' : 'w2';
    expect(home[1]?.who).toEqual([[`ws://${worker}`]]);
    h.finish(worker, 'a');
    h.finish(worker, 'b');
    expect(h.take('c1')).toEqual([{ op: 'in-memory', keys: ['b'], holder: [0], tickets: [], ticketHolder: [], addresses: [`ws://${worker}`] }]);
  });

  it('sends a dependent ahead only along a chain: not to a task with several dependents, not away from its other inputs', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('root'), task('left', ['root']), task('right', ['root'])], ['left', 'right']);
    expect(keysOf(h.computes('w1'))).toEqual(['root']);
    h.finish('w1', 'root');
    h.worker('w2');
    h.submit([task('far', [], { workers: ['w2'] })], ['far']);
    h.finish('w2', 'far', { nbytes: 1_000_000 });
    h.take('w1');
    h.take('w2');
    // 'join' needs 'far' (on w2) and 'step' (to run on w1): it is not sent ahead to w1.
    h.submit([task('step', ['root'], { workers: ['w1'] }), task('join', ['step', 'far'])], ['join']);
    expect(keysOf(h.computes('w1'))).toEqual(['step']);
    expect(h.state('join')).toBe('waiting');
  });

  it('takes a speculative dependent back when its input leaves the worker without a result', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a', [], { retries: 1 }), task('b', ['a'])], ['b']);
    expect(keysOf(h.computes('w1'))).toEqual(['a', 'b']);
    h.err('w1', 'a');
    // b is freed on w1 and waits again; a is retried (and b sent along again).
    const msgs = h.take('w1');
    expect(msgs.find((m) => m.op === 'free')?.keys).toEqual(['b']);
    expect(h.state('b')).toBe('processing');
    expect(h.sm.tasks.get('a')?.rare?.retriesLeft).toBe(0);
  });

  it('rejects a cycle, naming its keys, and changes nothing', () => {
    const h = new Harness();
    h.client();
    h.submit([task('x', ['z']), task('y', ['x']), task('z', ['y']), task('ok')], ['x', 'ok']);
    const [reply] = h.take('c1');
    expect(reply?.op).toBe('graph-rejected');
    expect((reply?.error as { message: string }).message).toMatch(/cycle: (x|y|z) -> (x|y|z) -> (x|y|z) -> (x|y|z)/);
    expect(h.sm.tasks.size).toBe(0);
  });

  it('rejects a missing dependency, naming task and dependency', () => {
    const h = new Harness();
    h.client();
    h.submit([task('b', ['nope'])], ['b']);
    const [reply] = h.take('c1');
    expect(reply?.op).toBe('graph-rejected');
    expect((reply?.error as { message: string }).message).toContain('b -> nope');
    expect(h.sm.tasks.size).toBe(0);
  });

  it('accepts a key listed twice in one graph with the same definition, rejects it with two, leaving nothing behind', () => {
    const h = new Harness();
    h.client();
    h.submit([task('twice'), task('twice'), task('after', ['twice'])], ['after']);
    expect(ops(h.take('c1'))).toEqual(['graph-ok']);
    expect(h.sm.tasks.get('after')?.deps.map((d) => d.key)).toEqual(['twice']);
    h.submit([task('d1'), task('d1', [], {}, 'other.ts#g'), task('d2')], ['d1', 'd2']);
    const [reply] = h.take('c1');
    expect(reply?.op).toBe('graph-rejected');
    expect(reply?.keys).toEqual(['d1']);
    expect(h.sm.tasks.has('d1') || h.sm.tasks.has('d2')).toBe(false);
  });

  it('rejects a key resubmitted with a different definition, accepts the same one again', () => {
    const h = new Harness();
    h.client();
    h.submit([task('a')], ['a']);
    h.take('c1');
    h.submit([task('a', [], {}, 'other.ts#g')], ['a']);
    const [reply] = h.take('c1');
    expect(reply?.op).toBe('graph-rejected');
    expect(reply?.keys).toEqual(['a']);
    h.submit([task('a')], ['a']);
    expect(ops(h.take('c1'))).toEqual(['graph-ok']);
  });

  it('orders a reduction depth-first so intermediate results can be freed early', () => {
    const h = new Harness();
    h.client();
    // ((l0 + l1) + (l2 + l3))
    h.submit([task('l0'), task('l1'), task('l2'), task('l3'), task('s01', ['l0', 'l1']), task('s23', ['l2', 'l3']), task('top', ['s01', 's23'])], ['top']);
    const order = ['l0', 'l1', 's01', 'l2', 'l3', 's23', 'top'].map((k) => h.sm.tasks.get(k)?.order ?? -1);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it('runs higher user priority first, then graph order', () => {
    const h = new Harness();
    h.client();
    h.submit([task('p0'), task('p1'), task('urgent', [], { priority: 10 })], ['p0', 'p1', 'urgent']);
    h.worker('w1');
    expect(keysOf(h.computes('w1'))).toEqual(['urgent', 'p0']);
  });
});

describe('root-task queuing', () => {
  it('hands a worker ceil(1.1 x threads) root tasks of an unmeasured kind, more once they are known to be short', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 2 });
    const tasks = Array.from({ length: 100 }, (_, i) => task(`r-${i}`));
    h.submit(tasks, tasks.map((t) => t.key));
    const first = h.computes('w1');
    expect(first).toHaveLength(3);
    expect(h.sm.stateCounts()['queued']).toBe(97);
    h.finish('w1', 'r-0', { duration: 0.0001 });
    // 100 µs each: about 20 ms of work per thread fits in the queue now.
    expect(h.computes('w1').length).toBeGreaterThan(50);
  });

  it('keeps long tasks shallow: one finished task frees one slot', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 1 });
    const tasks = Array.from({ length: 10 }, (_, i) => task(`long-${i}`));
    h.submit(tasks, tasks.map((t) => t.key));
    expect(h.computes('w1')).toHaveLength(2);
    h.finish('w1', 'long-0', { duration: 5 });
    expect(h.computes('w1')).toHaveLength(1);
  });

  it('spreads root tasks across workers', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.worker('w2');
    const tasks = Array.from({ length: 10 }, (_, i) => task(`r-${i}`));
    h.submit(tasks, tasks.map((t) => t.key));
    expect(h.computes('w1')).toHaveLength(2);
    expect(h.computes('w2')).toHaveLength(2);
  });
});

describe('data locality', () => {
  it('places a dependent on the worker holding most of its input bytes', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.worker('w2');
    h.submit([task('big'), task('small')], ['big', 'small']);
    const on1 = keysOf(h.computes('w1'));
    const on2 = keysOf(h.computes('w2'));
    expect([...on1, ...on2].sort()).toEqual(['big', 'small']);
    const bigOn = on1.includes('big') ? 'w1' : 'w2';
    const smallOn = bigOn === 'w1' ? 'w2' : 'w1';
    h.finish(bigOn, 'big', { nbytes: 50_000_000 });
    h.finish(smallOn, 'small', { nbytes: 10 });
    h.submit([task('join', ['big', 'small'])], ['join']);
    expect(keysOf(h.computes(bigOn))).toEqual(['join']);
    expect(h.computes(smallOn)).toHaveLength(0);
  });
});

describe('errors and retries', () => {
  it('sends the error to the client and fails dependents naming the failed task', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('b', ['a']), task('c', ['b'])], ['a', 'c']);
    h.take('c1');
    h.err('w1', 'a', 'division by zero');
    const msgs = h.take('c1');
    const byKey = Object.fromEntries(msgs.map((m) => [m.key, m.error as { message: string; failedKey?: string; stack?: string }]));
    expect(byKey['a']?.message).toBe('division by zero');
    expect(byKey['a']?.stack).toContain('at remote');
    expect(byKey['c']?.failedKey).toBe('a');
    expect(h.state('b')).toBe('erred');
  });

  it('reruns a failing task up to `retries` times', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('flaky', [], { retries: 2 })], ['flaky']);
    h.take('c1');
    h.computes('w1');
    h.err('w1', 'flaky');
    expect(keysOf(h.computes('w1'))).toEqual(['flaky']);
    h.err('w1', 'flaky');
    expect(keysOf(h.computes('w1'))).toEqual(['flaky']);
    h.finish('w1', 'flaky');
    expect(h.take('c1')).toEqual([{ op: 'in-memory', keys: ['flaky'], holder: [0], tickets: [], ticketHolder: [], addresses: ['ws://w1'] }]);
  });

  it('ignores a result from a run that is no longer current and frees it there', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a', [], { retries: 1 })], ['a']);
    const oldRun = h.sm.tasks.get('a')?.flight?.run as number;
    h.err('w1', 'a');
    h.computes('w1');
    h.finish('w1', 'a', { run: oldRun });
    expect(h.state('a')).toBe('processing');
    expect(h.take('w1')).toEqual([{ op: 'free', keys: ['a'] }]);
  });
});

describe('worker failure', () => {
  it('reschedules processing tasks and recomputes results that lived only on the dead worker', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('x', [], { workers: ['w1'] }), task('b', ['a', 'x'])], ['b']);
    h.finish('w1', 'a');
    h.finish('w1', 'x');
    expect(h.state('b')).toBe('processing');
    h.worker('w2');
    h.submit([task('x2', [], { workers: ['w2'] })], ['x2']);
    h.removeWorker('w1');
    // a is recomputed on w2; b waits for it (x, restricted to the dead w1, waits for a worker).
    expect(keysOf(h.computes('w2'))).toContain('a');
    expect(h.state('b')).toBe('waiting');
    expect(h.state('x')).toBe('no-worker');
  });

  it('recomputes a long chain whose only result died with its worker, without recursing once per link', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    const n = 20_000;
    const tasks = [task('c0')];
    for (let i = 1; i < n; i++) tasks.push(task(`c${i}`, [`c${i - 1}`]));
    h.submit(tasks, [`c${n - 1}`]);
    // The links were all sent ahead to w1; it reports them finished in one message.
    h.finish('w1', tasks.map((t) => t.key));
    expect(h.state(`c${n - 1}`)).toBe('memory');
    expect(h.state('c0')).toBe('released');
    h.worker('w2');
    h.removeWorker('w1');
    // The whole chain goes to w2 again, its links sent ahead in order.
    const sent = keysOf(h.computes('w2'));
    expect(sent).toHaveLength(n);
    expect(sent.slice(0, 2)).toEqual(['c0', 'c1']);
    expect(h.state(`c${n - 1}`)).toBe('processing');
  });

  it('fails a task with KilledWorkerError after it was running on 3 workers that died', () => {
    const h = new Harness();
    h.client();
    h.submit([task('poison'), task('innocent')], ['poison', 'innocent']);
    for (const w of ['w1', 'w2', 'w3']) {
      h.worker(w, { nthreads: 1 });
      const sent = keysOf(h.computes(w));
      expect(sent).toContain('poison');
      h.executing(w, ['poison']);
      h.removeWorker(w);
    }
    const msgs = h.take('c1').filter((m) => m.op === 'erred');
    expect(msgs).toHaveLength(1);
    expect(msgs[0]?.key).toBe('poison');
    expect((msgs[0]?.error as { name: string }).name).toBe('KilledWorkerError');
    // The task that was merely queued next to it is not blamed.
    expect(h.sm.tasks.get('innocent')?.rare?.suspicious ?? 0).toBe(0);
    h.worker('w4');
    expect(keysOf(h.computes('w4'))).toEqual(['innocent']);
  });

  it('removes a worker that stops heartbeating and closes its connection', () => {
    const h = new Harness({ heartbeatTimeoutMs: 5000 });
    h.worker('w1');
    h.tick(4000);
    expect(h.closed).toEqual([]);
    h.tick(2000);
    expect(h.closed.map((c) => c.id)).toEqual(['w1']);
    expect(h.sm.workers.size).toBe(0);
  });

  it('a worker dying with a speculative chain and the inputs it held: each task waits on exactly its missing inputs', () => {
    // Found by the randomized sequences: d was taken back (counting a's loss), then counted a's loss again.
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('b', ['a']), task('c', ['b', 'a']), task('d', ['a', 'c'])], ['a', 'b', 'c', 'd']);
    h.finish('w1', 'a');
    h.finish('w1', 'b');
    // c runs on w1 with d sent along; w1 dies holding a and b.
    expect(h.state('d')).toBe('processing');
    h.removeWorker('w1');
    expect(h.sm.tasks.get('d')?.waitingOn).toBe(2);
    h.worker('w2');
    for (const k of ['a', 'b', 'c', 'd']) h.finish('w2', k);
    expect(['a', 'b', 'c', 'd'].map((k) => h.state(k))).toEqual(['memory', 'memory', 'memory', 'memory']);
  });

  it('a lost result its client gives back is in memory where it was put, and the runs of its lost inputs stop', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('b', ['a'], { workers: ['w1'] }), task('c', ['b'], { workers: ['w1'] })], ['b', 'c']);
    h.finish('w1', 'a');
    h.finish('w1', 'b');
    h.worker('w2');
    h.take('c1');
    h.computes('w2');
    // w1 dies holding a and b (c, restricted to w1, then waits for a worker): b is wanted, so a is computed again for it, on w2.
    h.removeWorker('w1');
    expect(h.take('c1')).toContainEqual({ op: 'lost', keys: ['b'] });
    expect(h.state('b')).toBe('waiting');
    expect(h.state('a')).toBe('processing');
    expect(keysOf(h.computes('w2'))).toEqual(['a']);
    // The client had b: it put it on w2 and says so. b is in memory there, and a, needed by nothing now, stops.
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'restore', keys: ['b'], nbytes: [8], worker: 'ws://w2' }, now: h.now });
    h.tick(0);
    expect(h.state('b')).toBe('memory');
    expect(h.sm.tasks.get('b')?.whoHas.map((w) => w.id)).toEqual(['w2']);
    expect(h.state('a')).toBe('released');
    expect(h.take('w2')).toContainEqual({ op: 'free', keys: ['a'] });
    expect(h.take('c1')).toContainEqual(expect.objectContaining({ op: 'in-memory' }));
  });

  it('a value given back for a task being computed again stops that run (one on the worker given it is not freed there); one not wanted by that client is freed', () => {
    const h = new Harness();
    h.client();
    h.client('c2');
    h.worker('w1');
    h.submit([task('a', [], { workers: ['w1'] }), task('x', [], { workers: ['w1'] })], ['a', 'x']);
    h.finish('w1', ['a', 'x']);
    h.worker('w2');
    h.worker('w3');
    h.removeWorker('w1');
    const [again] = [...h.computes('w2'), ...h.computes('w3')].filter((m) => m.key === 'a');
    expect(again).toBeUndefined(); // restricted to w1: waits for a worker
    h.submit([task('y')], ['y']);
    const placed = h.computes('w2').length > 0 ? 'w2' : 'w3';
    const other = placed === 'w2' ? 'w3' : 'w2';
    expect(h.state('y')).toBe('processing');
    // y is wanted by c1: given back by c1 on the other worker, its run stops where it was sent.
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'restore', keys: ['y'], nbytes: [8], worker: `ws://${other}` }, now: h.now });
    h.tick(0);
    expect(h.state('y')).toBe('memory');
    expect(h.take(placed)).toContainEqual({ op: 'free', keys: ['y'] });
    // The stopped run's result, if it comes anyway, is dropped there.
    h.take(other);
    // c2 wants nothing: its value is freed where it put it.
    h.sm.handle({ type: 'client-message', client: 'c2', msg: { op: 'restore', keys: ['x'], nbytes: [8], worker: `ws://${other}` }, now: h.now });
    h.tick(0);
    expect(h.state('x')).not.toBe('memory');
    expect(h.take(other)).toContainEqual({ op: 'free', keys: ['x'] });
  });

  it('a result a worker says it lost (a value it handed on) is computed again for those who want it', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a')], ['a']);
    expect(keysOf(h.computes('w1'))).toEqual(['a']);
    h.finish('w1', 'a');
    expect(h.state('a')).toBe('memory');
    h.take('c1');
    h.sm.handle({ type: 'worker-message', worker: 'w1', msg: { op: 'lost', keys: ['a'] }, now: h.now });
    h.tick(0);
    expect(keysOf(h.computes('w1'))).toEqual(['a']);
    expect(h.take('c1')).toContainEqual({ op: 'lost', keys: ['a'] });
  });

  it('marks the value of a task whose only dependent goes along behind it, wanted by no client, as one the worker may hand on', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('b', ['a']), task('c', ['b'])], ['c']);
    const msg = h.take('w1').find((m) => m.op === 'compute') as { keys: string[]; ephemeral?: number[] } | undefined;
    expect(msg?.keys).toEqual(['a', 'b', 'c']);
    expect(msg?.ephemeral).toEqual([0, 1]);
  });

  it('a key fired and forgotten runs to its end after its client left, then is forgotten', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('b', ['a'])], ['b']);
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'fire-and-forget', keys: ['b'] }, now: h.now });
    h.sm.handle({ type: 'client-disconnected', client: 'c1' });
    h.tick(0);
    // Still wanted (by no client): a runs, then b.
    expect(h.sm.tasks.has('b')).toBe(true);
    expect(h.state('a')).toBe('processing');
    h.finish('w1', 'a');
    h.finish('w1', 'b');
    expect(h.sm.tasks.size).toBe(0);
  });

  it('does not blame a worker for the time the scheduler itself was stalled', () => {
    const h = new Harness({ heartbeatTimeoutMs: 5000 });
    h.worker('w1');
    h.worker('w2');
    h.tick(1000);
    // 20 s without a single event: the scheduler was not running to hear anyone.
    h.stall(20_000);
    expect(h.closed).toEqual([]);
    expect(h.sm.workers.size).toBe(2);
    // After the stall, w1 is heard and w2 stays silent: only w2 is removed, once
    // 5 s of running time pass (1 s before the stall, the 1 s stall threshold, 3 s after).
    h.heartbeat('w1');
    h.tick(2500);
    expect(h.closed).toEqual([]);
    h.heartbeat('w1');
    h.tick(1000);
    expect(h.closed.map((c) => c.id)).toEqual(['w2']);
    expect([...h.sm.workers.keys()]).toEqual(['w1']);
  });
});

describe('resources and restrictions', () => {
  it('runs a task needing a GPU only where one is declared', () => {
    const h = new Harness();
    h.client();
    h.worker('cpu');
    h.worker('gpu', { resources: { GPU: 2 } });
    h.submit([task('train', [], { resources: { GPU: 1 } })], ['train']);
    expect(h.computes('cpu')).toHaveLength(0);
    const [msg] = h.computes('gpu');
    expect(msg?.resources).toEqual({ GPU: 1 });
  });

  it('reports a task no worker can run at once, and errs it after the timeout', () => {
    const h = new Harness({ noWorkerTimeoutMs: 10_000 });
    h.client();
    h.worker('cpu');
    h.submit([task('train', [], { resources: { GPU: 1 } })], ['train']);
    const notice = h.take('c1').find((m) => m.op === 'no-worker');
    expect(notice?.reason).toContain('GPU=1');
    expect(h.state('train')).toBe('no-worker');
    h.tick(11_000);
    const erred = h.take('c1').find((m) => m.op === 'erred');
    expect((erred?.error as { name: string }).name).toBe('NoWorkerError');
  });

  it('starts a waiting no-worker task when a suitable worker joins', () => {
    const h = new Harness();
    h.client();
    h.worker('cpu');
    h.submit([task('train', [], { resources: { GPU: 1 } })], ['train']);
    h.worker('gpu', { resources: { GPU: 1 } });
    expect(keysOf(h.computes('gpu'))).toEqual(['train']);
  });

  it('honours worker restrictions by name', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { name: 'alpha' });
    h.worker('w2', { name: 'beta' });
    h.submit([task('only-beta', [], { workers: ['beta'] })], ['only-beta']);
    expect(keysOf(h.computes('w2'))).toEqual(['only-beta']);
    expect(h.computes('w1')).toHaveLength(0);
  });
});

describe('releasing results', () => {
  it('tells the first wanter by its ticket and the others by key; a ticket goes with its client\'s want', () => {
    const h = new Harness();
    h.client('c1');
    h.client('c2');
    h.worker('w1');
    h.worker('w2');
    h.submit([task('t')], ['t'], 'c1', [7]);
    h.submit([task('t')], ['t'], 'c2');
    const worker = h.computes('w1').length > 0 ? 'w1' : 'w2';
    h.computes(worker === 'w1' ? 'w2' : 'w1');
    h.finish(worker, 't');
    expect(h.take('c1')).toContainEqual({ op: 'in-memory', keys: [], holder: [], tickets: [7], ticketHolder: [0], addresses: [`ws://${worker}`] });
    expect(h.take('c2')).toContainEqual({ op: 'in-memory', keys: ['t'], holder: [0], tickets: [], ticketHolder: [], addresses: [`ws://${worker}`] });
    // c1 lets go: c2 is the first wanter now, and c1's ticket means nothing to c2.
    h.release(['t'], 'c1');
    h.removeWorker(worker);
    const other = worker === 'w1' ? 'w2' : 'w1';
    expect(keysOf(h.computes(other))).toEqual(['t']);
    h.finish(other, 't');
    expect(h.take('c1')).toEqual([]);
    expect(h.take('c2')).toContainEqual({ op: 'in-memory', keys: ['t'], holder: [0], tickets: [], ticketHolder: [], addresses: [`ws://${other}`] });
  });

  it('holds the tasks of a submission in parts until its last part, then frees what nothing needs', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    // Part 1: tasks nobody wants, whose dependents come later; they run and their results stay.
    h.submit([task('a'), task('b')], [], 'c1', [], true);
    expect(keysOf(h.computes('w1')).sort()).toEqual(['a', 'b']);
    h.finish('w1', ['a', 'b']);
    expect(h.take('w1')).toEqual([]);
    expect(h.state('a')).toBe('memory');
    // Part 2 (the last): depends on a only; b was held for nothing and goes now.
    h.submit([task('c', ['a'])], ['c']);
    const sent = h.take('w1');
    expect(sent).toContainEqual({ op: 'free', keys: ['b'] });
    expect(sent.filter((m) => m.op === 'compute').flatMap((m) => m.keys as string[])).toEqual(['c']);
    h.finish('w1', 'c');
    expect(h.take('w1')).toEqual([{ op: 'free', keys: ['a'] }]);
    h.release(['c']);
    expect(h.sm.tasks.size).toBe(0);
  });

  it('lets go of what a submission in parts held when its client leaves, or its last part is rejected', () => {
    const h = new Harness();
    h.client('c1');
    h.client('c2');
    h.worker('w1');
    h.submit([task('x')], [], 'c1', [], true);
    h.submit([task('y')], [], 'c2', [], true);
    h.finish('w1', ['x', 'y']);
    h.sm.handle({ type: 'client-disconnected', client: 'c1' });
    h.submit([task('z', ['missing'])], ['z'], 'c2');
    expect(h.take('c2').some((m) => m.op === 'graph-rejected')).toBe(true);
    h.tick(0);
    expect(h.sm.tasks.size).toBe(0);
  });

  it('releases a large graph a slice per event, answering other events in between', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 4 });
    // 120,000 tasks nobody wants: all dropped at once, a cascade of releases.
    const b = new GraphBuilder();
    for (let i = 0; i < 120_000; i++) b.add('mod.ts#f', [i], {}, `t-${i}`);
    h.sm.handle({ type: 'client-message', client: 'c1', msg: b.build(1, []), now: h.now });
    // Not all at once: work is left, and a worker's message is handled before it.
    expect(h.sm.hasPendingWork).toBe(true);
    expect(h.sm.tasks.size).toBeGreaterThan(0);
    h.heartbeat('w1');
    expect(h.sm.tasks.size).toBe(0);
  });

  it('frees an intermediate result once its dependents are done, and a wanted one when released', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a'), task('b', ['a'])], ['b']);
    h.finish('w1', 'a');
    h.computes('w1');
    h.finish('w1', 'b');
    expect(h.take('w1')).toEqual([{ op: 'free', keys: ['a'] }]);
    expect(h.state('a')).toBe('released');
    h.release(['b']);
    expect(h.take('w1')).toEqual([{ op: 'free', keys: ['b'] }]);
    expect(h.sm.tasks.size).toBe(0);
  });

  it('keeps a result while another client still wants it', () => {
    const h = new Harness();
    h.client('c1');
    h.client('c2');
    h.worker('w1');
    h.submit([task('shared')], ['shared'], 'c1');
    h.submit([task('shared')], ['shared'], 'c2');
    h.finish('w1', 'shared');
    h.take('w1');
    h.release(['shared'], 'c1');
    expect(h.take('w1')).toEqual([]);
    h.release(['shared'], 'c2');
    expect(h.take('w1')).toEqual([{ op: 'free', keys: ['shared'] }]);
  });

  it('cancels queued and processing work that nobody wants any more', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    const tasks = Array.from({ length: 5 }, (_, i) => task(`r-${i}`));
    h.submit(tasks, tasks.map((t) => t.key));
    h.computes('w1');
    h.release(tasks.map((t) => t.key));
    expect(h.take('w1')).toEqual([{ op: 'free', keys: expect.arrayContaining(['r-0', 'r-1']) }]);
    expect(h.sm.tasks.size).toBe(0);
  });

  it('forgets everything a disconnected client wanted', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('a')], ['a']);
    h.finish('w1', 'a');
    h.sm.handle({ type: 'client-disconnected', client: 'c1' });
    expect(h.sm.tasks.size).toBe(0);
  });
});

describe('task events', () => {
  const events = (h: Harness, worker: string, topics: string[]): void => {
    h.sm.handle({ type: 'worker-message', worker, msg: { op: 'task-events', topics, data: topics.map((_, i) => new Uint8Array([i])) }, now: h.now });
  };

  it('passes events to the clients subscribed to their topic, in order and merged, and drops the rest', () => {
    const h = new Harness();
    h.client('c1');
    h.client('c2');
    h.worker('w1');
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'subscribe', topics: ['run:a', 'run:b'] }, now: h.now });
    h.sm.handle({ type: 'client-message', client: 'c2', msg: { op: 'subscribe', topics: ['run:b'] }, now: h.now });
    events(h, 'w1', ['run:a', 'run:x', 'run:b']);
    events(h, 'w1', ['run:a']);
    h.tick(0);
    expect(h.take('c1')).toEqual([{ op: 'events', topics: ['run:a', 'run:b', 'run:a'], data: [new Uint8Array([0]), new Uint8Array([2]), new Uint8Array([0])] }]);
    expect(h.take('c2')).toEqual([{ op: 'events', topics: ['run:b'], data: [new Uint8Array([2])] }]);
    // Unsubscribed, or gone: nothing more.
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'unsubscribe', topics: ['run:b'] }, now: h.now });
    h.sm.handle({ type: 'client-disconnected', client: 'c2' });
    events(h, 'w1', ['run:b', 'run:a']);
    h.tick(0);
    expect(h.take('c1')).toEqual([{ op: 'events', topics: ['run:a'], data: [new Uint8Array([1])] }]);
    expect(h.take('c2')).toEqual([]);
  });

  it('sends a task\'s events to the client ahead of its result', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'subscribe', topics: ['t'] }, now: h.now });
    h.submit([task('a')], ['a']);
    h.take('c1');
    events(h, 'w1', ['t']);
    h.finish('w1', 'a');
    expect(h.take('c1').map((m) => m.op)).toEqual(['events', 'in-memory']);
  });

  it('drops a message whose columns differ in length, with a warning', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.sm.handle({ type: 'client-message', client: 'c1', msg: { op: 'subscribe', topics: ['t'] }, now: h.now });
    h.sm.handle({ type: 'worker-message', worker: 'w1', msg: { op: 'task-events', topics: ['t', 't'], data: [new Uint8Array(1)] }, now: h.now });
    const ins = h.sm.takeInstructions();
    expect(ins.logs.map((l) => l.msg)).toContain('task events dropped: topics and data differ in length');
    expect(ins.messages.get('c1') ?? []).toEqual([]);
  });
});

describe('results put early by a running task', () => {
  const freed = (msgs: Msg[]): string[] => msgs.filter((m) => m.op === 'free').flatMap((m) => m.keys as string[]);

  it('a task submitted while the task it takes runs, with its value put early, is in memory on that worker at once; values nobody took are freed when the task ends', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 2 });
    h.submit([task('p')], ['p']);
    expect(keysOf(h.computes('w1'))).toEqual(['p']);
    h.early('w1', 'p', ['p#1', 'p#2'], 100);
    h.submit([task('p#1', ['p']), task('c', ['p#1'])], ['c']);
    expect(h.state('p#1')).toBe('memory');
    // Its dependent runs now, beside p, which still runs.
    const c = h.computes('w1');
    expect(keysOf(c)).toEqual(['c']);
    expect(c[0]?.who).toEqual([['ws://w1']]);
    expect(h.state('p')).toBe('processing');
    h.finish('w1', 'p');
    // Still taken while p's result is held: p#2 comes in memory too.
    expect(freed(h.take('w1'))).toEqual([]);
    h.submit([task('p#2', ['p'])], ['p#2']);
    expect(h.state('p#2')).toBe('memory');
    expect(h.computes('w1')).toEqual([]);
    // Values nobody took go with p's result.
    h.early('w1', 'p', []);
    h.submit([task('q')], ['q']);
    h.take('w1');
    const run = h.sm.tasks.get('q')?.flight?.run ?? 0;
    h.sm.handle({ type: 'worker-message', worker: 'w1', msg: { op: 'early', parents: ['q'], runs: Float64Array.of(run), keys: ['q#1'], nbytes: Float64Array.of(8) }, now: h.now });
    h.finish('w1', 'q');
    h.release(['q']);
    expect(freed(h.take('w1')).sort()).toEqual(['q', 'q#1']);
  });

  it('a value put by a task that then fails is freed', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('p')], ['p']);
    h.take('w1');
    h.early('w1', 'p', ['p#1']);
    h.err('w1', 'p');
    expect(freed(h.take('w1'))).toEqual(['p#1']);
    h.submit([task('p#1', ['p'])], ['p#1']);
    expect(h.state('p#1')).toBe('erred');
  });

  it('a value put by a task that has ended or moved is freed at once; one put for another task\'s key too', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('p')], ['p']);
    h.take('w1');
    const run = h.sm.tasks.get('p')?.flight?.run ?? 0;
    h.finish('w1', 'p');
    h.sm.handle({ type: 'worker-message', worker: 'w1', msg: { op: 'early', parents: ['p'], runs: Float64Array.of(run), keys: ['p#1'], nbytes: Float64Array.of(8) }, now: h.now });
    h.submit([task('q'), task('q#1', ['q'])], ['q', 'q#1']);
    expect(freed(h.take('w1'))).toEqual(['p#1']);
    // q#1 exists already (waiting on q, but not put by q's run): a value put by another task for it is not taken.
    h.worker('w2');
    h.submit([task('r', [], { workers: ['w2'] })], ['r']);
    h.early('w2', 'r', ['q#1']);
    expect(freed(h.take('w2'))).toEqual(['q#1']);
    expect(h.state('q#1')).not.toBe('memory');
  });

  it('a value lost with its worker is put again by the rerun of the task it comes from', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 2 });
    h.submit([task('p')], ['p']);
    h.take('w1');
    h.early('w1', 'p', ['p#1', 'p#2']);
    h.submit([task('p#1', ['p']), task('p#2', ['p'])], ['p#1', 'p#2']);
    expect([h.state('p#1'), h.state('p#2')]).toEqual(['memory', 'memory']);
    h.worker('w2');
    h.removeWorker('w1');
    // p runs again on w2; its values wait on it, and take what its rerun puts.
    expect(keysOf(h.computes('w2'))).toEqual(['p']);
    expect([h.state('p#1'), h.state('p#2')]).toEqual(['waiting', 'waiting']);
    h.early('w2', 'p', ['p#1']);
    expect(h.state('p#1')).toBe('memory');
    expect(h.sm.tasks.get('p#1')?.whoHas.map((w) => w.name)).toEqual(['w2']);
    h.finish('w2', 'p');
    expect(keysOf(h.computes('w2'))).toEqual(['p#2']);
  });

  it('a value put as the task it is for was sent to that worker (the messages crossed) is left for the worker to report', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 2 });
    h.submit([task('p'), task('p#1', ['p'])], ['p#1']);
    // p#1 went along with p (a chain).
    expect(keysOf(h.computes('w1'))).toEqual(['p', 'p#1']);
    h.early('w1', 'p', ['p#1']);
    expect(freed(h.take('w1'))).toEqual([]);
    expect(h.state('p#1')).toBe('processing');
  });
});

describe('work stealing', () => {
  /** w1 (one thread) holds the inputs of n tasks of 100 ms, all queued there; then w2 joins. */
  function lopsided(n = 10, config: ConstructorParameters<typeof Harness>[0] = {}): Harness {
    const h = new Harness(config);
    h.client();
    h.worker('w1');
    const inputs = Array.from({ length: n }, (_, i) => task(`in${i}`));
    h.submit(inputs, inputs.map((t) => t.key));
    for (let round = 0; round < n; round++) {
      const sent = keysOf(h.computes('w1'));
      if (sent.length === 0) break;
      h.finish('w1', sent, { duration: 0.1 });
    }
    h.submit(Array.from({ length: n }, (_, i) => task(`t${i}`, [`in${i}`])), Array.from({ length: n }, (_, i) => `t${i}`));
    expect(keysOf(h.computes('w1'))).toHaveLength(n);
    h.worker('w2');
    return h;
  }

  it('a worker that joins takes queued tasks from a saturated one at once; only those the victim dropped move', () => {
    const h = lopsided();
    const asked = h.stealsAsked('w1');
    // Up to one more than its thread: it starts one while the next comes.
    expect(asked).toHaveLength(2);
    // The newest first: the last the victim would have started.
    expect(asked.map(([k]) => k)).toEqual(['t9', 't8']);
    h.stealReply('w1', asked, (k) => k === 't9');
    const moved = h.computes('w2');
    expect(keysOf(moved)).toEqual(['t9']);
    expect(moved[0]?.who).toEqual([['ws://w1']]);
    expect(h.sm.tasks.get('t8')?.flight?.worker.name).toBe('w1');
    // Once w2 has a free thread again, the balance asks for more.
    h.now += 100;
    h.finish('w2', 't9', { duration: 0.1 });
    expect(h.stealsAsked('w1').length).toBeGreaterThan(0);
  });

  it('a reply for a task that finished, erred or moved meanwhile changes nothing; a repeated or unknown one is ignored', () => {
    const h = lopsided();
    const asked = h.stealsAsked('w1');
    const [[first], [second]] = asked as [[string, number], [string, number]];
    h.finish('w1', first);
    h.err('w1', second);
    h.take('c1');
    h.stealReply('w1', asked, () => true);
    expect(h.computes('w2')).toEqual([]);
    expect(h.state(first)).toBe('memory');
    expect(h.state(second)).toBe('erred');
    h.stealReply('w1', asked, () => true);
    h.stealReply('w1', [['t3', 999_999]], () => true);
    expect(h.computes('w2')).toEqual([]);
  });

  it('the thief leaving before the reply: the task is placed anew; the victim leaving: its tasks are rescheduled, the steals dropped', () => {
    const h = lopsided();
    const asked = h.stealsAsked('w1');
    h.removeWorker('w2');
    h.stealReply('w1', asked, () => true);
    // Placed anew: back on w1, the only worker.
    expect(asked.every(([k]) => h.sm.tasks.get(k)?.flight?.worker.name === 'w1')).toBe(true);
    const g = lopsided();
    g.stealsAsked('w1');
    g.worker('w3');
    g.removeWorker('w1');
    // The inputs were only on w1: everything is computed again on the others.
    expect(g.state('in0')).not.toBe('memory');
  });

  it('tasks too short to be worth a round trip are never stolen', () => {
    const h = new Harness();
    h.client();
    h.worker('w1');
    h.submit([task('x')], ['x']);
    h.finish('w1', 'x', { duration: 0.001 });
    h.submit(Array.from({ length: 20 }, (_, i) => task(`s${i}`, ['x'])), Array.from({ length: 20 }, (_, i) => `s${i}`));
    h.take('w1');
    h.worker('w2');
    h.tick(2000);
    expect(h.stealsAsked('w1')).toEqual([]);
  });

  it('stealing off: nothing is asked', () => {
    const h = lopsided(10, { stealing: false });
    h.tick(2000);
    expect(h.stealsAsked('w1')).toEqual([]);
  });
});

describe('coordination primitives', () => {
  const call = (h: Harness, client: string, id: number, m: Record<string, unknown>): void => {
    h.sm.handle({ type: 'client-message', client, msg: { op: 'sync', id, ...m } as never, now: h.now });
    h.tick(0);
  };
  const replies = (h: Harness, client: string): [number, boolean][] => h.take(client).filter((m) => m.op === 'sync-reply').map((m) => [m.id as number, m.ok as boolean]);
  const sem = { kind: 'semaphore', name: 's', maxLeases: 2 };

  it('a semaphore grants up to its leases, queues the rest first come first served, times them out, and frees a leaving client\'s leases', () => {
    const h = new Harness();
    for (const c of ['a', 'b', 'c', 'd']) h.client(c);
    call(h, 'a', 1, { ...sem, action: 'acquire', lease: 'la' });
    call(h, 'b', 2, { ...sem, action: 'acquire', lease: 'lb' });
    call(h, 'c', 3, { ...sem, action: 'acquire', lease: 'lc' });
    call(h, 'd', 4, { ...sem, action: 'acquire', lease: 'ld', timeout: 1 });
    expect([...replies(h, 'a'), ...replies(h, 'b'), ...replies(h, 'c'), ...replies(h, 'd')]).toEqual([[1, true], [2, true]]);
    h.tick(1500);
    // d's timeout passed; c still waits.
    expect(replies(h, 'd')).toEqual([[4, false]]);
    call(h, 'a', 5, { ...sem, action: 'release', lease: 'la' });
    expect(replies(h, 'c')).toEqual([[3, true]]);
    // A client that leaves gives its lease back: a new one gets it.
    h.sm.handle({ type: 'client-disconnected', client: 'b' });
    call(h, 'd', 6, { ...sem, action: 'acquire', lease: 'ld2' });
    expect(replies(h, 'd')).toEqual([[6, true]]);
    call(h, 'a', 7, { ...sem, action: 'acquire', lease: 'x', maxLeases: 3 });
    expect(h.take('a').find((m) => m.op === 'sync-reply' && m.id === 7)?.error).toMatch(/has 2 leases, not 3/);
  });

  it('a lease not refreshed for its lease timeout lapses, and the next waiter gets it', () => {
    const h = new Harness();
    h.client('a');
    h.client('b');
    const lock = { kind: 'semaphore', name: 'l', maxLeases: 1, leaseTimeout: 2 };
    call(h, 'a', 1, { ...lock, action: 'acquire', lease: 'la' });
    call(h, 'b', 2, { ...lock, action: 'acquire', lease: 'lb' });
    h.tick(1500);
    call(h, 'a', 0, { ...lock, action: 'refresh', leases: ['la'] });
    h.tick(1500);
    expect(replies(h, 'b')).toEqual([]);
    h.tick(1000);
    expect(replies(h, 'b')).toEqual([[2, true]]);
  });

  it('events wake every waiter; variables answer once set; queues keep order and their maxsize', () => {
    const h = new Harness();
    h.client('a');
    h.client('b');
    const ev = { kind: 'event', name: 'go' };
    call(h, 'a', 1, { ...ev, action: 'wait' });
    call(h, 'b', 2, { ...ev, action: 'wait', timeout: 0 });
    expect(replies(h, 'b')).toEqual([[2, false]]);
    call(h, 'b', 3, { ...ev, action: 'set' });
    expect(replies(h, 'a')).toEqual([[1, true]]);
    const v = { kind: 'variable', name: 'v' };
    call(h, 'a', 4, { ...v, action: 'get' });
    call(h, 'b', 5, { ...v, action: 'set', value: new Uint8Array([7]) });
    expect(h.take('a').find((m) => m.op === 'sync-reply' && m.id === 4)?.value).toEqual(new Uint8Array([7]));
    const q = { kind: 'queue', name: 'q', maxsize: 1 };
    call(h, 'a', 6, { ...q, action: 'put', value: new Uint8Array([1]) });
    call(h, 'a', 7, { ...q, action: 'put', value: new Uint8Array([2]), timeout: 5 });
    expect(replies(h, 'a')).toEqual([[6, true]]);
    call(h, 'b', 8, { ...q, action: 'get' });
    const got = h.take('b').filter((m) => m.op === 'sync-reply' && m.id === 8);
    expect(got.map((m) => m.value)).toEqual([new Uint8Array([1])]);
    // Room: the waiting put goes in.
    expect(replies(h, 'a')).toEqual([[7, true]]);
    call(h, 'b', 9, { ...q, action: 'qsize' });
    expect(h.take('b').find((m) => m.op === 'sync-reply' && m.id === 9)?.size).toBe(1);
  });
});

describe('the adaptive target', () => {
  it('asks for the threads that would finish the work in the target duration, no more than the tasks, in workers; none when idle', () => {
    const h = new Harness();
    h.client();
    h.worker('w1', { nthreads: 2 });
    expect(h.sm.adaptiveTarget(5)).toBe(0);
    // Measure the kind: 1 s per task.
    h.submit([task('m0'), task('m1')], ['m0', 'm1']);
    h.finish('w1', keysOf(h.computes('w1')), { duration: 1 });
    h.submit(Array.from({ length: 40 }, (_, i) => task(`t${i}`)), Array.from({ length: 40 }, (_, i) => `t${i}`));
    // 40 s of work over 5 s: 8 threads, 4 workers of 2.
    expect(h.sm.adaptiveTarget(5)).toBe(4);
    // Over 1 s, 40 threads, capped by the 40 tasks: 20 workers.
    expect(h.sm.adaptiveTarget(1)).toBe(20);
  });
});
