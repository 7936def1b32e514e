/**
 * Graphs in: a client's graph (or one part of a submission in parts) is
 * validated whole (columns, conflicting keys, missing dependencies, cycles),
 * ordered, and admitted; an invalid graph changes nothing. Scattered data
 * enters here too.
 */
import { type ClientRecord, addDependent, addHolder, FnEntry, isNeeded, newTask, taskArgs, type TaskState, type TaskOptionsIn } from './task-state.ts';
import { type SchedulerCore, group, addWant, born, idle } from './core.ts';
import { want, toMemory, enterWaiting } from './transitions.ts';
import { findCycle } from './cycles.ts';
import { claimEarly } from './early.ts';
import { checkGraphColumns, type FnDef, type GraphMsg, type TaskExtra } from '../protocol/messages.ts';
import { assignGraphOrder } from './order.ts';

/** `order` of a task new in the graph being added: FRESH - its index there. */
const FRESH = -10;

/**
 * Adds a client's graph. Validates it whole first (column consistency,
 * conflicting keys, missing dependencies, cycles): an invalid graph changes
 * nothing and is rejected with the keys at fault. One map lookup per key
 * and per dependency: new tasks enter the table as they are read and leave
 * it again if the graph is rejected.
 *
 * Each pass over the tasks is a method of its own: a cold process compiles
 * each loop separately (on-stack replacement compiles the whole enclosing
 * function), and a part without dependencies, the usual large submission,
 * skips the passes that only concern dependencies.
 */
export function updateGraph(s: SchedulerCore, c: ClientRecord, g: GraphMsg): void {
  const id = g.id;
  const bad = checkGraphColumns(g);
  if (bad) return reject(s, c, id, `malformed graph: ${bad}`, []);
  const fns = g.fnTable.map((def) => internFn(s, def));
  const depStart = new Int32Array(g.keys.length + 1);
  if (g.deps.length > 0) prefixSums(g.depCounts, depStart);
  const read = readTasks(s, g, fns, depStart);
  const { at, created } = read;
  const rollback = (): void => {
    for (const ts of created) s.tasks.delete(ts.key);
  };
  if (read.conflicts.length > 0) {
    rollback();
    return reject(s, c, id, `keys submitted before (or twice here) with a different definition: ${list(read.conflicts)}; use new keys for different work`, read.conflicts);
  }
  const wantTs: TaskState[] = [];
  const missing: string[] = [];
  for (const k of g.wantKeys) {
    const ts = s.tasks.get(k);
    if (ts) wantTs.push(ts);
    else missing.push(`(wanted) ${k}`);
  }
  const problem = g.deps.length > 0 ? linkGraph(s, g, created, depStart, missing) : missingProblem(missing);
  if (problem) {
    rollback();
    return reject(s, c, id, problem.message, problem.keys);
  }
  if (g.deps.length > 0) {
    for (const ts of created) ts.order = -1;
    s.orderCounter = assignGraphOrder(created, s.orderCounter);
    created.sort((a, b) => a.order - b.order);
  } else {
    // No dependencies: the graph order is the submission order.
    for (const ts of created) ts.order = s.orderCounter++;
  }
  admit(s, c, g, at, created, read.reused, wantTs);
  s.outbox.push(c.id, { op: 'graph-ok', id });
}

/**
 * Creates the graph's new tasks (numbered FRESH - i in `order` until
 * ordered) and checks the ones it shares with known tasks: the same key
 * must mean the same function, arguments and dependencies.
 */
function readTasks(s: SchedulerCore, g: GraphMsg, fns: readonly FnEntry[], depStart: Int32Array): { at: TaskState[]; created: TaskState[]; conflicts: string[]; reused: number[] } {
  const n = g.keys.length;
  const keys = g.keys;
  const fnCol = g.fn;
  const argEnds = g.argEnds;
  const extra = new Map<number, TaskExtra>();
  for (const e of g.extra) extra.set(e.i, e);
  const at: TaskState[] = new Array(n);
  const created: TaskState[] = [];
  const conflicts: string[] = [];
  const reused: number[] = [];
  // The arguments decode as a view into the received frame; the tasks keep a copy of their own, so the frame (keys, dependencies and all) can go.
  const args = g.args.byteLength === g.args.buffer.byteLength ? g.args : Uint8Array.prototype.slice.call(g.args);
  for (let i = 0; i < n; i++) {
    const key = keys[i] as string;
    const fn = fns[fnCol[i] as number] as FnEntry;
    const existing = s.tasks.get(key);
    if (existing) {
      at[i] = existing;
      reused.push(i);
      if (!sameTask(g, depStart, i, fn, existing)) conflicts.push(key);
      continue;
    }
    const e = extra.size === 0 ? undefined : extra.get(i);
    const ts = newTask(key, fn, args, i === 0 ? 0 : (argEnds[i - 1] as number), argEnds[i] as number, e ? taskOptions(e) : null);
    ts.order = FRESH - i;
    s.tasks.set(key, ts);
    at[i] = ts;
    created.push(ts);
  }
  return { at, created, conflicts, reused };
}

/**
 * Resolves the new tasks' dependencies, checks for cycles and links them.
 * Returns the reason to reject the graph (nothing linked then), or null.
 * `missing` already lists wanted keys that do not exist.
 */
function linkGraph(s: SchedulerCore, g: GraphMsg, created: readonly TaskState[], depStart: Int32Array, missing: string[]): { message: string; keys: string[] } | null {
  const depTs: (TaskState | undefined)[] = new Array(g.deps.length);
  for (const ts of created) {
    const i = FRESH - ts.order;
    for (let k = depStart[i] as number; k < (depStart[i + 1] as number); k++) {
      const d = s.tasks.get(g.deps[k] as string);
      depTs[k] = d;
      if (!d) missing.push(`${ts.key} -> ${g.deps[k]}`);
    }
  }
  const unknown = missingProblem(missing);
  if (unknown) return unknown;
  const isFresh = new Uint8Array(g.keys.length);
  for (const ts of created) isFresh[FRESH - ts.order] = 1;
  const cycle = findCycle(g.keys.length, isFresh, depStart, (k) => {
    const d = depTs[k];
    return d !== undefined && d.order <= FRESH ? FRESH - d.order : -1;
  });
  if (cycle) {
    const keys = cycle.map((i) => g.keys[i] as string);
    return { message: `the graph has a cycle: ${keys.join(' -> ')}`, keys };
  }
  for (const ts of created) {
    const i = FRESH - ts.order;
    const from = depStart[i] as number;
    const to = depStart[i + 1] as number;
    if (from === to) continue;
    ts.deps = new Array(to - from);
    for (let k = from; k < to; k++) {
      const d = depTs[k] as TaskState;
      ts.deps[k - from] = d;
      addDependent(d, ts);
    }
  }
  return null;
}

/** A valid, linked and ordered graph: its tasks start waiting, its wanted keys are held. */
function admit(s: SchedulerCore, c: ClientRecord, g: GraphMsg, at: readonly TaskState[], created: readonly TaskState[], reused: readonly number[], wantTs: readonly TaskState[]): void {
  if (g.more) {
    // More parts follow, whose tasks may depend on these: held until the last part (one count of `waiters` each).
    for (const ts of created) ts.waiters++;
    (c.held ??= []).push(created);
  }
  for (let j = 0; j < g.wants.length; j++) addWant(s, c, at[g.wants[j] as number] as TaskState, g.tickets[j] as number);
  for (const ts of wantTs) addWant(s, c, ts);
  for (const ts of created) {
    born(s, ts);
    // Put early by a running task it depends on (early.ts): nothing to wait for.
    if (s.early.size > 0 && claimEarly(s, ts)) continue;
    enterWaiting(s, ts);
  }
  // Existing tasks wanted again: report where they stand.
  if (reused.length > 0) {
    const wanted = new Uint8Array(at.length);
    for (const i of g.wants) wanted[i] = 1;
    for (const i of reused) if (wanted[i]) want(s, c, at[i] as TaskState);
  }
  for (const ts of wantTs) want(s, c, ts);
  // Fresh tasks nobody wants and nothing depends on are dropped at once.
  for (const ts of created) if (!isNeeded(ts)) s.releaseQ.push(ts);
}

/** Lets go of the tasks a client's earlier parts held (see admit). */
export function dropHolds(s: SchedulerCore, c: ClientRecord): void {
  const held = c.held;
  if (!held) return;
  c.held = null;
  for (const part of held) for (const ts of part) if (--ts.waiters === 0 && !isNeeded(ts)) s.releaseQ.push(ts);
}

function internFn(s: SchedulerCore, def: FnDef): FnEntry {
  // Its label is part of its identity: a client's tasks carry the label it gave, never another client's for the same source.
  const label = def[2] || 'task';
  const k = `${def[0]}:${label}:${def[1]}`;
  let f = s.fnByRef.get(k);
  if (!f) {
    f = new FnEntry(++s.fnCounter, k, def, group(s, label));
    s.fnByRef.set(k, f);
    // Idle until a task calling it is admitted (a graph rejected leaves it to be forgotten).
    idle(s, f);
  }
  return f;
}

/** Tells the client its graph was rejected, and logs why. */
export function reject(s: SchedulerCore, c: ClientRecord, id: number, message: string, keys: string[]): void {
  s.outbox.push(c.id, { op: 'graph-rejected', id, error: { name: 'GraphError', message }, keys: keys.slice(0, 100) });
  s.logs.push({ level: 'warn', msg: 'graph rejected', data: { client: c.id, reason: message } });
}

/** Data a client put on a worker: known as in memory there, wanted by that client. */
export function scattered(s: SchedulerCore, c: ClientRecord, id: number, keys: string[], nbytes: number[], address: string): void {
  const w = s.byAddress.get(address);
  if (!w) {
    s.outbox.push(c.id, { op: 'scattered-ok', id, error: `no worker at ${address}` });
    return;
  }
  const bad: string[] = [];
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    let ts = s.tasks.get(key);
    if (ts && ts.fn !== null) {
      bad.push(key);
      continue;
    }
    if (!ts) {
      ts = newTask(key, null, null, 0, 0, null);
      s.tasks.set(key, ts);
      born(s, ts);
    }
    if (!ts.whoHas.includes(w)) {
      addHolder(ts, w);
      w.stored++;
      w.storedBytes += nbytes[i] ?? 0;
    }
    ts.nbytes = nbytes[i] ?? 0;
    if (ts.state !== 'memory') toMemory(s, ts);
    addWant(s, c, ts);
  }
  const error = bad.length > 0 ? `keys already used by computed tasks: ${list(bad)}` : undefined;
  s.outbox.push(c.id, error ? { op: 'scattered-ok', id, error } : { op: 'scattered-ok', id });
}

/** The reason to reject a graph naming keys that do not exist ("task -> dependency" or "(wanted) key"), or null. */
function missingProblem(missing: string[]): { message: string; keys: string[] } | null {
  if (missing.length === 0) return null;
  return { message: `missing dependencies (task -> dependency): ${list(missing)}`, keys: missing.map((m) => m.split(' -> ')[0] ?? m) };
}

/** out[i + 1] = counts[0] + ... + counts[i]. */
function prefixSums(counts: ArrayLike<number>, out: Int32Array): void {
  for (let i = 0; i < counts.length; i++) out[i + 1] = (out[i] as number) + (counts[i] as number);
}

/** Whether task i of graph g defines the same task as `existing` (the same key seen before, or earlier in g). */
function sameTask(g: GraphMsg, depStart: Int32Array, i: number, fn: FnEntry, existing: TaskState): boolean {
  if (fn !== existing.fn) return false;
  const argsOf = (t: number): Uint8Array => g.args.subarray(t === 0 ? 0 : (g.argEnds[t - 1] as number), g.argEnds[t] as number);
  const depsOf = (t: number): string[] => g.deps.slice(depStart[t], depStart[t + 1]);
  const j = existing.order <= FRESH ? FRESH - existing.order : -1;
  if (j >= 0) return bytesEqual(argsOf(i), argsOf(j)) && sameKeys(depsOf(i), depsOf(j));
  return bytesEqual(taskArgs(existing), argsOf(i)) && sameKeys(existing.deps.map((d) => d.key), depsOf(i));
}

function bytesEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return Buffer.compare(a, b) === 0;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/** Up to ten items, and how many more. */
export function list(items: string[]): string {
  return items.length <= 10 ? items.join(', ') : `${items.slice(0, 10).join(', ')} and ${items.length - 10} more`;
}

/** A task's options from its graph entry; null when it sets none that matter. */
function taskOptions(e: TaskExtra): TaskOptionsIn {
  const resources = e.resources && Object.keys(e.resources).length > 0 ? e.resources : null;
  const workers = e.workers && e.workers.length > 0 ? e.workers : null;
  const priority = e.priority ?? 0;
  const retriesLeft = e.retries ?? 0;
  return resources || workers || priority !== 0 || retriesLeft !== 0 ? { priority, resources, workers, retriesLeft } : null;
}
