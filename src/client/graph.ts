/**
 * Building task messages on the client: function references, arguments with
 * references to other keys (futures or `ref('key')`), deterministic keys, and
 * local validation of a graph before it is sent.
 */
import { createHash } from 'node:crypto';
import { GraphError } from '../errors.ts';
import { KeyRef } from '../protocol/codec.ts';
import type { TaskMsg } from '../protocol/messages.ts';
import { encodeSpec, FN_INLINE, FN_MODULE } from '../protocol/spec.ts';
import { Future } from './future.ts';
import { inlineSource } from './inline.ts';

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
  args?: unknown[];
}

export type Graph = Record<string, TaskDef>;

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

/** Replaces futures with key references and collects the keys referenced. */
export function prepareArgs(args: unknown[], deps: Set<string>): unknown[] {
  const walk = (v: unknown): unknown => {
    if (v instanceof Future) {
      deps.add(v.key);
      return new KeyRef(v.key);
    }
    if (v instanceof KeyRef) {
      deps.add(v.key);
      return v;
    }
    if (Array.isArray(v)) {
      let out: unknown[] | null = null;
      for (let i = 0; i < v.length; i++) {
        const item: unknown = v[i];
        const w = walk(item);
        if (w !== item) (out ??= v.slice())[i] = w;
      }
      return out ?? v;
    }
    if (isPlainObject(v)) {
      let out: Record<string, unknown> | null = null;
      for (const k in v) {
        const w = walk(v[k]);
        if (w !== v[k]) (out ??= { ...v })[k] = w;
      }
      return out ?? v;
    }
    return v;
  };
  return walk(args) as unknown[];
}

/** Builds the wire form of one task. With no key given, the key is a hash of the work. */
export function buildTask(fn: TaskFn, args: unknown[], opts: TaskOptions & { key?: string | undefined }): TaskMsg {
  const depSet = new Set<string>();
  const prepared = prepareArgs(args, depSet);
  const spec = typeof fn === 'string' ? encodeSpec(FN_MODULE, fn, prepared) : encodeSpec(FN_INLINE, inlineSource(fn), prepared);
  const deps = [...depSet];
  const label = fnLabel(fn);
  const key = opts.key ?? `${label}-${createHash('sha1').update(spec).digest('hex').slice(0, 20)}`;
  const t: TaskMsg = { key, spec, deps, group: label };
  if (opts.priority !== undefined) t.priority = opts.priority;
  if (opts.retries !== undefined) t.retries = opts.retries;
  if (opts.resources !== undefined) t.resources = opts.resources;
  if (opts.workers !== undefined) t.workers = opts.workers;
  return t;
}

/**
 * Checks a graph before sending it: every dependency is in the graph or in
 * `known` (keys of existing futures; others are left to the scheduler), and
 * there is no cycle. Throws GraphError naming the keys.
 */
export function validateGraph(tasks: TaskMsg[]): void {
  const byKey = new Map<string, TaskMsg>();
  for (const t of tasks) byKey.set(t.key, t);
  // Cycle check (iterative DFS, colors: 1 = on stack, 2 = done).
  const color = new Map<string, number>();
  for (const start of tasks) {
    if (color.has(start.key)) continue;
    const stack: { key: string; i: number }[] = [{ key: start.key, i: 0 }];
    color.set(start.key, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { key: string; i: number };
      const deps = byKey.get(top.key)?.deps ?? [];
      if (top.i >= deps.length) {
        color.set(top.key, 2);
        stack.pop();
        continue;
      }
      const d = deps[top.i++] as string;
      if (!byKey.has(d)) continue;
      const c = color.get(d);
      if (c === 1) {
        const from = stack.findIndex((s) => s.key === d);
        const cycle = [...stack.slice(from).map((s) => s.key), d];
        throw new GraphError(`the graph has a cycle: ${cycle.join(' -> ')}`, cycle);
      }
      if (c === undefined) {
        color.set(d, 1);
        stack.push({ key: d, i: 0 });
      }
    }
  }
}
