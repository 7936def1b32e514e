/**
 * Building task messages on the client: function references, arguments with
 * references to other keys (futures or `ref('key')`), deterministic keys, and
 * local validation of a graph before it is sent.
 */
import { createHash } from 'node:crypto';
import { DepRef, encode, KeyRef } from '../protocol/codec.ts';
import { ByteWriter, writeSimple } from '../protocol/simple-codec.ts';
import { keyFits, MAX_KEY, type FnDef, type GraphMsg, type TaskExtra } from '../protocol/messages.ts';
import { FN_INLINE, FN_MODULE } from '../protocol/spec.ts';
import { Future } from './future.ts';
import { inlineSource } from './inline.ts';
import { objectList } from '../util/lists.ts';

/**
 * A task function: a module reference `"./tasks.ts#inc"` (imported by the
 * worker; relative paths resolve against the worker's working directory) or
 * a self-contained function shipped as source.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any function signature is accepted; arguments are checked at run time on the worker
export type TaskFn = string | ((...args: any[]) => unknown);

export interface TaskOptions {
  /** Higher runs first (before graph order). Default 0. */
  priority?: number;
  /** Reruns after a failure, up to this many times. */
  retries?: number;
  /** Abstract resources the task holds while it runs, e.g. `{ GPU: 1 }`. */
  resources?: Record<string, number>;
  /** Names or addresses of the only workers that may run it. */
  workers?: string[];
}

export interface TaskDef extends TaskOptions {
  fn: TaskFn;
  args?: readonly unknown[];
}

/** Tasks by key. */
export type Graph = Record<string, TaskDef>;

/**
 * Tasks by key in a Map: accepted wherever a Graph is, and faster for large
 * graphs. V8 keeps an object with many keys as a dictionary and sorts its
 * keys each time they are listed (about 30 ms for 100,000 keys); a Map keeps
 * insertion order and is read in one pass.
 */
export type GraphMap = ReadonlyMap<string, TaskDef>;

function isGraphMap(g: Graph | GraphMap): g is GraphMap {
  return g instanceof Map;
}

/** The graph's keys in order, and the definition of the i-th (a Map is read in one pass, with no lookup per key). */
export function graphEntries(graph: Graph | GraphMap): { keys: string[]; defAt: (i: number) => TaskDef | undefined } {
  if (isGraphMap(graph)) {
    const keys: string[] = new Array(graph.size);
    const defs: TaskDef[] = new Array(graph.size);
    let i = 0;
    for (const [k, d] of graph) {
      keys[i] = k;
      defs[i++] = d;
    }
    return { keys, defAt: (j) => defs[j] };
  }
  const record: Graph = graph;
  const keys = Object.keys(record);
  return { keys, defAt: (j) => record[keys[j] as string] };
}

/** A reference to another key's result, for use inside a graph's arguments. */
export function ref(key: string): KeyRef {
  return new KeyRef(key);
}

export function fnLabel(fn: TaskFn): string {
  if (typeof fn === 'string') {
    const i = fn.lastIndexOf('#');
    const name = i >= 0 ? fn.slice(i + 1) : fn.replace(/^.*[/\\]/, '').replace(/\.[cm]?[jt]s$/, '');
    return name || 'task';
  }
  return fn.name || 'lambda';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Replaces futures and key references with references to the task's
 * dependencies by index, and collects the keys referenced (`deps`: key to
 * index, in order of first reference).
 */
export function prepareArgs(args: readonly unknown[], deps: Map<string, number>): readonly unknown[] {
  return prepareValue(args, deps) as readonly unknown[];
}

function depRef(key: string, deps: Map<string, number>): DepRef {
  let i = deps.get(key);
  if (i === undefined) deps.set(key, (i = deps.size));
  return new DepRef(i);
}

function prepareValue(v: unknown, deps: Map<string, number>): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (v instanceof Future || v instanceof KeyRef) return depRef(v.key, deps);
  if (Array.isArray(v)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      const w = prepareValue(item, deps);
      if (w !== item) (out ??= v.slice())[i] = w;
    }
    return out ?? v;
  }
  if (isPlainObject(v)) {
    let out: Record<string, unknown> | null = null;
    for (const k in v) {
      const w = prepareValue(v[k], deps);
      if (w !== v[k]) (out ??= { ...v })[k] = w;
    }
    return out ?? v;
  }
  return v;
}

/** A function as it travels: a module reference, or an inline function's source (checked to be self-contained). */
export function fnDef(fn: TaskFn): FnDef {
  return typeof fn === 'string' ? [FN_MODULE, fn, fnLabel(fn)] : [FN_INLINE, inlineSource(fn), fnLabel(fn)];
}

const SURROGATE = /[\ud800-\udfff]/;

/**
 * Builds a graph message column by column (see `graphMsg`): one key, one
 * function index and one slice of the argument blob per task. Functions are
 * listed once per graph, whatever the number of tasks calling them.
 */
export class GraphBuilder {
  readonly keys = objectList<string>();
  private fnTable: FnDef[] = [];
  private fnByRef = new Map<string, number>();
  private fnByFunction = new Map<object, number>();
  /** The function of the task added last: graphs mostly call one function for many tasks in a row. */
  private lastFn: TaskFn | null = null;
  private lastFnIndex = -1;
  private fn: number[] = [];
  /** Every task's msgpack arguments, back to back. */
  private args = new ByteWriter(1024);
  private argEnds: number[] = [];
  private depCounts: number[] = [];
  private deps = objectList<string>();
  private extra: TaskExtra[] = [];
  /** The dependencies of the task being added, by key: their index in its list. */
  private depSet = new Map<string, number>();

  get size(): number {
    return this.keys.length;
  }

  /** How many dependencies the task added last has. */
  get lastDeps(): number {
    return this.depSet.size;
  }

  /** The dependencies of the task added last. */
  lastDepKeys(): Iterable<string> {
    return this.depSet.keys();
  }

  /** Adds a task; returns its key (given, or the function's label and a hash of the call). */
  add(fn: TaskFn, args: readonly unknown[], opts: TaskOptions = {}, givenKey?: string): string {
    const fi = this.fnIndex(fn);
    const def = this.fnTable[fi] as FnDef;
    // Clearing allocates a new table even when empty, and most tasks have no dependencies.
    if (this.depSet.size > 0) this.depSet.clear();
    const prepared = prepareArgs(args, this.depSet);
    // Simple arguments (numbers, strings, arrays of them) are written in place; others by msgpackr.
    const start = this.args.pos;
    if (!writeSimple(this.args, prepared)) this.args.bytes(encode(prepared));
    let key = givenKey;
    if (key === undefined) {
      const h = createHash('sha1').update(def[1]).update(this.args.buf.subarray(start, this.args.pos));
      if (this.depSet.size > 0) for (const d of this.depSet.keys()) h.update(d);
      key = `${def[2]}-${h.digest('hex').slice(0, 20)}`;
    }
    this.keys.push(key);
    this.fn.push(fi);
    this.argEnds.push(this.args.pos);
    this.depCounts.push(this.depSet.size);
    if (this.depSet.size > 0) for (const d of this.depSet.keys()) this.deps.push(d);
    if (opts.priority !== undefined || opts.retries !== undefined || opts.resources !== undefined || opts.workers !== undefined) {
      const e: TaskExtra = { i: this.keys.length - 1 };
      if (opts.priority !== undefined) e.priority = opts.priority;
      if (opts.retries !== undefined) e.retries = opts.retries;
      if (opts.resources !== undefined) e.resources = opts.resources;
      if (opts.workers !== undefined) e.workers = opts.workers;
      this.extra.push(e);
    }
    return key;
  }

  /**
   * What is wrong with this graph's keys and dependencies for the wire, or
   * null: each must be non-empty, at most MAX_KEY characters, and
   * well-formed text (a lone UTF-16 surrogate has no UTF-8 form, so the key
   * would change on its way). One scan of the joined text finds any
   * surrogate; only then is each key checked.
   */
  keyProblem(): { message: string; keys: string[] } | null {
    for (const list of [this.keys, this.deps]) {
      for (const k of list) {
        if (typeof k !== 'string' || !keyFits(k)) {
          return { message: `key ${JSON.stringify(String(k).slice(0, 80))} must be a non-empty string of at most ${MAX_KEY} characters`, keys: [String(k)] };
        }
      }
      if (!SURROGATE.test(list.join(''))) continue;
      const bad = list.find((k) => !k.isWellFormed());
      if (bad !== undefined) return { message: `key ${JSON.stringify(bad)} contains a lone UTF-16 surrogate, which cannot be sent as UTF-8; use well-formed text for keys`, keys: [bad] };
    }
    return null;
  }

  /** Keys that some task of this graph depends on. */
  depKeys(): Set<string> {
    return new Set(this.deps);
  }

  /**
   * The message; `wants` are indices of tasks to hold futures for, with the
   * client's `tickets` for them (default: none), `wantKeys` existing keys.
   */
  build(id: number, wants: number[], wantKeys: string[] = [], tickets: Float64Array<ArrayBuffer> = new Float64Array(wants.length).fill(-1), more = false): GraphMsg {
    return {
      ...(more ? { more } : {}),
      op: 'update-graph',
      id,
      keys: this.keys,
      fnTable: this.fnTable,
      // Typed columns travel as one block of bytes each (see messages.ts).
      fn: Uint32Array.from(this.fn),
      // A Buffer, so msgpack carries it as plain binary (a Uint8Array would go as a typed-array extension).
      args: Buffer.from(this.args.buf.buffer, this.args.buf.byteOffset, this.args.pos),
      argEnds: Uint32Array.from(this.argEnds),
      depCounts: Uint32Array.from(this.depCounts),
      deps: this.deps,
      extra: this.extra,
      wants: Uint32Array.from(wants),
      tickets,
      wantKeys,
    };
  }

  private fnIndex(fn: TaskFn): number {
    // Comparing with the last one is cheaper than hashing a reference string built afresh per task.
    if (fn === this.lastFn) return this.lastFnIndex;
    const i = this.lookUpFn(fn);
    this.lastFn = fn;
    this.lastFnIndex = i;
    return i;
  }

  private lookUpFn(fn: TaskFn): number {
    if (typeof fn === 'string') {
      let i = this.fnByRef.get(fn);
      if (i === undefined) {
        i = this.fnTable.push(fnDef(fn)) - 1;
        this.fnByRef.set(fn, i);
      }
      return i;
    }
    let i = this.fnByFunction.get(fn);
    if (i === undefined) {
      i = this.fnTable.push(fnDef(fn)) - 1;
      this.fnByFunction.set(fn, i);
    }
    return i;
  }
}
