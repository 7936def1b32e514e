import { describe, expect, it } from 'vitest';
import { WorkerState, type ComputeTask, type ExecTask, type WorkerInstruction } from '../src/worker/state-machine.ts';
import { plainColumns } from './helpers/columns.ts';

const ME = 'ws://me';

function compute(key: string, opts: Partial<ComputeTask> = {}): ComputeTask {
  return { key, run: 1, fn: 0, args: new Uint8Array([0x90]), order: 0, priority: 0, deps: [], who: [], resources: null, ...opts };
}

function executed(ins: WorkerInstruction[]): ExecTask[] {
  return ins.flatMap((i) => (i.type === 'execute' ? i.tasks : []));
}

/** Messages sent, with typed number columns as plain arrays (easier to compare). */
function sent(ins: WorkerInstruction[]): Record<string, unknown>[] {
  return ins.flatMap((i) => (i.type === 'send' ? [plainColumns(i.msg)] : []));
}

const bytes = (n: number): Uint8Array => new Uint8Array([n]);

describe('worker state machine', () => {
  it('runs a task with no dependencies and reports it finished, batched', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a'));
    const ins = w.takeInstructions();
    expect(executed(ins).map((t) => t.key)).toEqual(['a']);
    expect(sent(ins)).toEqual([{ op: 'executing', keys: ['a'], runs: [1] }]);
    w.executed([{ key: 'a', run: 1, bytes: bytes(7), duration: 0.01 }]);
    expect(sent(w.takeInstructions())).toEqual([{ op: 'finished', keys: ['a'], runs: [1], nbytes: [1], durations: [0.01] }]);
    expect(w.getData('a')).toEqual(bytes(7));
  });

  it('fetches a missing dependency from the peer that holds it, then runs with it', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('b', { deps: ['a'], who: [['ws://peer']]}));
    const ins = w.takeInstructions();
    expect(ins).toContainEqual({ type: 'fetch', peer: 'ws://peer', keys: ['a'] });
    expect(executed(ins)).toHaveLength(0);
    w.fetched('ws://peer', ['a'], [bytes(3)]);
    const run = executed(w.takeInstructions());
    expect(run.map((t) => t.key)).toEqual(['b']);
    expect(run[0]?.depData).toEqual([bytes(3)]);
    // A borrowed input is dropped once the task is done.
    w.executed([{ key: 'b', run: 1, bytes: bytes(4), duration: 0 }]);
    expect(w.getData('a')).toBeUndefined();
    expect(w.getData('b')).toEqual(bytes(4));
  });

  it('a value given for a task not started here (a lost result given back) is its result: reported done, and its local dependent takes it', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a', { deps: ['x'], who: [['ws://peer']] }));
    w.compute(compute('b', { deps: ['a'], who: [[ME]], run: 2 }));
    w.takeInstructions();
    expect(w.fillIn('a', bytes(5))).toBe(true);
    const ins = w.takeInstructions();
    expect(sent(ins)).toContainEqual({ op: 'finished', keys: ['a'], runs: [1], nbytes: [1], durations: [0] });
    expect(executed(ins).map((t) => t.key)).toEqual(['b']);
    expect(executed(ins)[0]?.depData).toEqual([bytes(5)]);
    expect(w.getData('a')).toEqual(bytes(5));
    expect(w.checkInvariants()).toBeNull();
    // A task already running keeps its run; nothing to fill in for a key with no task.
    expect(w.fillIn('b', bytes(6))).toBe(false);
    expect(w.fillIn('nothing', bytes(6))).toBe(false);
  });

  it('a task with an input nobody holds is reported missing at once, and holds none of its other inputs', () => {
    // Found by the randomized sequences: the task was dropped half-way through its inputs and kept a ref on a later one.
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.put(['a'], [bytes(1)]);
    w.compute(compute('b', { deps: ['gone', 'a'], who: [[ME], [ME]] }));
    expect(sent(w.takeInstructions())).toEqual([{ op: 'missing', key: 'b', run: 1, dep: 'gone', holders: [] }]);
    expect(w.checkInvariants()).toBeNull();
    w.free(['a']);
    expect(w.getData('a')).toBeUndefined();
  });

  it('tries the next holder when a peer fails, and reports missing data when none is left', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('b', { deps: ['a'], who: [['ws://p1', 'ws://p2']]}));
    const first = w.takeInstructions().find((i) => i.type === 'fetch') as { peer: string };
    w.fetchFailed(first.peer, ['a']);
    const second = w.takeInstructions().find((i) => i.type === 'fetch') as { peer: string };
    expect(second.peer).not.toBe(first.peer);
    w.fetched(second.peer, ['a'], [null]);
    expect(sent(w.takeInstructions())).toEqual([{ op: 'missing', key: 'b', run: 1, dep: 'a', holders: [first.peer, second.peer] }]);
  });

  it('runs higher priority first, then lower graph order', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('late', { order: 5 }));
    w.compute(compute('early', { order: 1 }));
    w.compute(compute('urgent', { order: 9, priority: 3 }));
    expect(executed(w.takeInstructions()).map((t) => t.key)).toEqual(['urgent']);
    w.executed([{ key: 'urgent', run: 1, bytes: bytes(1), duration: 1 }]);
    expect(executed(w.takeInstructions()).map((t) => t.key)).toEqual(['early']);
  });

  it('holds a task until the resources it asks for are free', () => {
    const w = new WorkerState({ nthreads: 4, resources: { GPU: 1 }, address: ME });
    w.compute(compute('g1', { resources: { GPU: 1 } }));
    w.compute(compute('g2', { resources: { GPU: 1 } }));
    w.compute(compute('cpu'));
    expect(executed(w.takeInstructions()).map((t) => t.key).sort()).toEqual(['cpu', 'g1']);
    w.executed([{ key: 'g1', run: 1, bytes: bytes(1), duration: 0 }]);
    expect(executed(w.takeInstructions()).map((t) => t.key)).toEqual(['g2']);
  });

  it('discards the result of a task freed while it ran', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a'));
    w.takeInstructions();
    w.free(['a']);
    // The running task is told (its signal aborts), once.
    expect(w.takeInstructions().filter((i) => i.type === 'cancel')).toEqual([{ type: 'cancel', keys: ['a'] }]);
    w.free(['a']);
    expect(w.takeInstructions().filter((i) => i.type === 'cancel')).toEqual([]);
    w.executed([{ key: 'a', run: 1, bytes: bytes(1), duration: 0 }]);
    expect(sent(w.takeInstructions())).toEqual([]);
    expect(w.getData('a')).toBeUndefined();
  });

  it('skips a task freed while waiting for a thread, and runs the one sent again under its key', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('busy'));
    const busy = executed(w.takeInstructions());
    // 'a' waits in the ready queue (the one thread is busy), is freed, then sent again as run 2.
    w.compute(compute('a'));
    expect(executed(w.takeInstructions())).toEqual([]);
    w.free(['a']);
    w.compute(compute('a', { run: 2 }));
    w.executed([{ key: 'busy', run: 1, task: busy[0], bytes: bytes(1), duration: 0.01 }]);
    const again = executed(w.takeInstructions());
    expect(again.map((t) => [t.key, t.run])).toEqual([['a', 2]]);
    // Results carry the dispatched task itself, as the executor pool sends them.
    w.executed([{ key: 'a', run: 2, task: again[0], bytes: bytes(5), duration: 0.01 }]);
    expect(sent(w.takeInstructions())).toEqual([{ op: 'finished', keys: ['a'], runs: [2], nbytes: [1], durations: [0.01] }]);
    expect(w.getData('a')).toEqual(bytes(5));
  });

  it('reports a task error with its stack', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a'));
    w.takeInstructions();
    w.executed([{ key: 'a', run: 1, error: { name: 'TypeError', message: 'x is undefined', stack: 'TypeError: x\n at f' }, duration: 0 }]);
    expect(sent(w.takeInstructions())).toEqual([{ op: 'erred', key: 'a', run: 1, error: { name: 'TypeError', message: 'x is undefined', stack: 'TypeError: x\n at f' } }]);
  });

  it('keeps an input freed by the scheduler until the local task using it is done', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a'));
    w.takeInstructions();
    w.executed([{ key: 'a', run: 1, bytes: bytes(1), duration: 0 }]);
    w.compute(compute('b', { deps: ['a'], who: [[ME]]}));
    w.takeInstructions();
    w.free(['a']);
    expect(w.getData('a')).toEqual(bytes(1));
    w.executed([{ key: 'b', run: 1, bytes: bytes(2), duration: 0 }]);
    expect(w.getData('a')).toBeUndefined();
  });

  it('queues a dependent sent ahead right behind its input on the same thread, even for long tasks, without fetching it', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a'));
    w.compute(compute('b', { deps: ['a'], who: [[ME]] }));
    w.compute(compute('other'));
    const first = w.takeInstructions();
    // The chain counts once against the one slot of an unmeasured kind: 'other' waits.
    expect(executed(first).map((t) => [t.key, t.after])).toEqual([
      ['a', null],
      ['b', 'a'],
    ]);
    expect(first.some((i) => i.type === 'fetch')).toBe(false);
    w.executed([
      { key: 'a', run: 1, bytes: bytes(5), duration: 0.5 },
      { key: 'b', run: 1, bytes: bytes(6), duration: 0.5 },
    ]);
    expect(executed(w.takeInstructions()).map((t) => t.key)).toEqual(['other']);
  });

  it('forgets a dependent sent ahead when the scheduler takes it back', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a'));
    w.compute(compute('b', { deps: ['a'], who: [[ME]] }));
    w.takeInstructions();
    w.free(['b']);
    w.executed([{ key: 'a', run: 1, bytes: bytes(5), duration: 0 }]);
    expect(executed(w.takeInstructions())).toEqual([]);
  });

  it('sends a short chain onto one thread: the dependent goes right behind its input, which the thread passes in memory', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    // Teach the worker that tasks are short, so a thread may hold several.
    w.compute(compute('warm'));
    w.takeInstructions();
    w.executed([{ key: 'warm', run: 1, bytes: bytes(0), duration: 0.00001 }]);
    w.compute(compute('a'));
    w.compute(compute('b', { deps: ['a'], who: [[ME]] }));
    const sent = executed(w.takeInstructions());
    expect(sent.map((t) => [t.key, t.after])).toEqual([
      ['a', null],
      ['b', 'a'],
    ]);
    expect(sent[1]?.depData).toEqual([new Uint8Array(0)]);
    // The thread had no value for a after all: b comes back and runs normally with a's bytes.
    w.executed([
      { key: 'a', run: 1, bytes: bytes(5), duration: 0 },
      { key: 'b', run: 1, duration: 0, requeue: true },
    ]);
    const again = executed(w.takeInstructions());
    expect(again.map((t) => [t.key, t.after])).toEqual([['b', null]]);
    expect(again[0]?.depData).toEqual([bytes(5)]);
  });

  it('a value handed on to the task behind it is reported done, kept nowhere, and reported lost when asked for', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a', { ephemeral: true }));
    w.compute(compute('b', { deps: ['a'], who: [[ME]] }));
    const sent1 = executed(w.takeInstructions());
    expect(sent1.map((t) => [t.key, t.after, t.keep, t.ephemeral])).toEqual([
      ['a', null, true, true],
      ['b', 'a', false, false],
    ]);
    // The thread handed a's 4 MiB to b: the scheduler hears a finished; nothing is stored here.
    w.executed([{ key: 'a', run: 1, task: sent1[0], duration: 0.001, handedOn: 4 * 1024 * 1024 }]);
    expect(sent(w.takeInstructions())).toContainEqual({ op: 'finished', keys: ['a'], runs: [1], nbytes: [4 * 1024 * 1024], durations: [0.001] });
    expect(w.getData('a')).toBeUndefined();
    expect(w.checkInvariants()).toBeNull();
    w.executed([{ key: 'b', run: 1, task: sent1[1], bytes: bytes(2), duration: 0.001 }]);
    expect(w.getData('b')).toEqual(bytes(2));
    // A later task here that needs a: missing, naming this worker, so the scheduler stops counting it as a holder.
    w.compute(compute('c', { deps: ['a'], who: [[ME]] }));
    expect(sent(w.takeInstructions())).toContainEqual({ op: 'missing', key: 'c', run: 1, dep: 'a', holders: [ME] });
    expect(w.checkInvariants()).toBeNull();
  });

  it('a value asked for by a peer after it was handed on is lost here, once', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.compute(compute('a', { ephemeral: true }));
    w.compute(compute('b', { deps: ['a'], who: [[ME]] }));
    const [ta, tb] = executed(w.takeInstructions());
    w.executed([{ key: 'a', run: 1, task: ta, duration: 0, handedOn: 100_000 }]);
    w.executed([{ key: 'b', run: 1, task: tb, bytes: bytes(1), duration: 0 }]);
    expect(w.takeHandedOn('a')).toBe(true);
    expect(w.takeHandedOn('a')).toBe(false);
  });

  it('a full spill disk is a state: one failed batch blocks spilling, a retry every few seconds, one result at a time, and a written spill unblocks it', () => {
    // A limit of 1,000 bytes: results past 600 held spill.
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME, memoryLimit: 1000 });
    w.memory(100, 0);
    const big = (n: number): Uint8Array => new Uint8Array(300).fill(n);
    const spills = (ins: WorkerInstruction[]): string[] => ins.flatMap((i) => (i.type === 'spill' ? i.entries.map(([k]) => k) : []));
    const first: string[] = [];
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) {
      w.compute(compute(key, { run: i + 1 }));
      first.push(...spills(w.takeInstructions()));
      w.executed([{ key, run: i + 1, bytes: big(i), duration: 0.01 }]);
    }
    first.push(...spills(w.takeInstructions()));
    expect(first).toEqual(['a', 'b']);
    // The disk is full: the first write fails, and the batch stays in memory. Said once.
    expect(w.spillFailed('a', big(0), 'ENOSPC: no space left on device')).toBe(true);
    expect(w.spillFailed('b', big(1), 'ENOSPC: no space left on device')).toBe(false);
    expect(w.getData('a')).toEqual(big(0));
    expect(w.spillBlocked).toEqual({ since: 0, reason: 'ENOSPC: no space left on device' });
    // No loop: nothing is tried again before SPILL_RETRY_MS, then one result.
    w.memory(100, 1000);
    expect(spills(w.takeInstructions())).toEqual([]);
    w.memory(100, 5000);
    const retried = spills(w.takeInstructions());
    expect(retried).toHaveLength(1);
    w.memory(100, 5100);
    expect(spills(w.takeInstructions())).toEqual([]);
    // Space again: the retried write works, and spilling goes on as before (to under 600 bytes held).
    expect(w.spillWritten()).toBe(true);
    expect(w.spillBlocked).toBeNull();
    expect(spills(w.takeInstructions())).toHaveLength(1);
  });

  it('paused with nowhere to spill past the timeout, it fails the tasks waiting to start, saying why', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME, memoryLimit: 1000, pausedTimeoutMs: 2000 });
    w.memory(100, 0);
    w.compute(compute('held', { run: 1 }));
    w.takeInstructions();
    w.executed([{ key: 'held', run: 1, bytes: new Uint8Array(700), duration: 0.01 }]);
    w.takeInstructions();
    w.spillFailed('held', new Uint8Array(700), 'ENOSPC');
    // Past 80% of the limit: paused; two tasks wait to start.
    w.memory(900, 100);
    w.compute(compute('x', { run: 2 }));
    w.compute(compute('y', { run: 3 }));
    expect(executed(w.takeInstructions())).toEqual([]);
    w.memory(900, 1900);
    expect(sent(w.takeInstructions()).filter((m) => m['op'] === 'erred')).toEqual([]);
    w.memory(900, 2100);
    const erred = sent(w.takeInstructions()).filter((m) => m['op'] === 'erred');
    expect(erred.map((m) => m['key'])).toEqual(['x', 'y']);
    expect((erred[0]?.['error'] as { name: string; message: string }).name).toBe('WorkerPausedError');
    expect((erred[0]?.['error'] as { message: string }).message).toMatch(/past 80% of its limit \(1000 bytes\) and it cannot spill results to disk \(ENOSPC\) for 2 s/);
  });
});

describe('work stealing on the worker', () => {
  it('drops a queued task the scheduler steals, keeps one already running, and says which; a stale run is kept', () => {
    const w = new WorkerState({ nthreads: 1, resources: {}, address: ME });
    w.put(['in'], [bytes(1)]);
    w.compute(compute('running', { run: 5 }));
    w.compute(compute('queued', { run: 6, deps: ['in'], who: [[ME]] }));
    w.compute(compute('fetching', { run: 7, deps: ['far'], who: [['ws://peer']] }));
    expect(executed(w.takeInstructions()).map((t) => t.key)).toEqual(['running']);
    w.steal(['running', 'queued', 'fetching', 'gone'], [5, 6, 7, 1]);
    expect(sent(w.takeInstructions())).toEqual([{ op: 'steal-reply', keys: ['running', 'queued', 'fetching', 'gone'], runs: [5, 6, 7, 1], released: [false, true, true, false] }]);
    expect(w.checkInvariants()).toBeNull();
    // The fetch comes back: nothing waits on it now, and the dropped tasks never run.
    w.fetched('ws://peer', ['far'], [bytes(2)]);
    w.executed([{ key: 'running', run: 5, bytes: bytes(9), duration: 0.1 }]);
    expect(executed(w.takeInstructions())).toEqual([]);
    expect(w.checkInvariants()).toBeNull();
    // The same key sent again (stolen back later) runs as usual; a steal of another run of it keeps it.
    w.compute(compute('queued', { run: 8, deps: ['in'], who: [[ME]] }));
    w.steal(['queued'], [6]);
    const ins = w.takeInstructions();
    expect(executed(ins).map((t) => t.key)).toEqual(['queued']);
    expect(sent(ins)).toContainEqual({ op: 'steal-reply', keys: ['queued'], runs: [6], released: [false] });
  });
});
