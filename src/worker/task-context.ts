/**
 * What a task can reach of the worker running it: publish events that
 * subscribed clients receive while the task runs, a signal that aborts
 * when the task is cancelled, a client of its scheduler to submit tasks of
 * its own, and secede/rejoin to give its thread slot back while it waits.
 *
 *   import { taskContext } from 'weftjs';
 *   export async function train(data) {
 *     const ctx = taskContext();
 *     ctx.emit('progress', { done: 0.5 });  // client.subscribe('progress', ...) gets it
 *     if (ctx.signal.aborted) return null;
 *   }
 *
 * The executor thread installs the provider (a global, so that every copy
 * of weft loaded in the thread finds the same one).
 */
import { WeftError } from '../errors.ts';
import type { Client } from '../client/client.ts';

export interface TaskContext {
  /**
   * Publishes `data` (anything msgpack encodes, at most 1 MiB encoded) on
   * `topic`. Events leave within a few milliseconds, while the task still
   * runs, and reach subscribers before the task's result is reported.
   */
  emit(topic: string, data: unknown): void;
  /**
   * Puts `value` on this worker now, while the task runs, as the result of
   * task `key`: a task that takes this one's result and computes `value`
   * from it (say, picks one item out of it). If a client submits that task
   * while this one still runs, it starts in memory, without running, and
   * its dependents start before this task ends; if not, the value is
   * dropped when this task ends. Returns its size encoded. Put a result
   * before the events that tell clients about it.
   */
  earlyResult(key: string, value: unknown): number;
  /** Aborted when the task is cancelled (its future released or cancelled while it runs). */
  readonly signal: AbortSignal;
  /**
   * A client connected to this worker's scheduler, one per executor thread,
   * made on first use: the task may submit tasks and wait on them (a task
   * waiting on its own subtasks should `secede()` first).
   */
  client(): Promise<Client>;
  /**
   * Gives this task's thread slot back while it waits (Dask's `secede`):
   * other tasks run on its thread meanwhile, so a task waiting on subtasks
   * cannot deadlock a worker of one thread. Its result is reported when it
   * ends, as usual.
   */
  secede(): Promise<void>;
  /** Counts this seceded task against its worker's threads again (Dask's `rejoin`); it does not wait for a free one. */
  rejoin(): Promise<void>;
}

export const TASK_CONTEXT = Symbol.for('weft.taskContext');
/** Rejoins the latest seceded task of this thread (see rejoin). */
export const TASK_REJOIN = Symbol.for('weft.taskRejoin');

type Provider = () => TaskContext | null;

/** The context of the task running now on this thread; throws outside a task. */
export function taskContext(): TaskContext {
  const provider = (globalThis as Record<symbol, Provider | undefined>)[TASK_CONTEXT];
  const ctx = provider?.() ?? null;
  if (!ctx) throw new WeftError('taskContext() was called outside a running weft task: call it from a task function while that task runs');
  return ctx;
}

/**
 * Gives the running task's thread slot back (see TaskContext.secede). Call
 * it while the task runs, before it has waited on anything (after that,
 * other seceded tasks may be running on the thread): `await secede()`.
 */
export function secede(): Promise<void> {
  return taskContext().secede();
}

/**
 * Counts the calling task against its worker's threads again, as in
 * `await secede(); await subtasks; await rejoin()`. After a wait, weft
 * cannot tell which task calls: with one seceded task on the thread it is
 * that one; with several, none is counted back now (each is as it ends),
 * since counting the wrong one could hold a thread for a task still
 * waiting on subtasks queued behind it. `ctx.rejoin()` names its task.
 */
export function rejoin(): Promise<void> {
  const r = (globalThis as Record<symbol, (() => void) | undefined>)[TASK_REJOIN];
  if (!r) throw new WeftError('rejoin() was called outside a weft task');
  r();
  return Promise.resolve();
}

/** Installs the function that gives the running task's context (the executor thread does). */
export function provideTaskContext(provider: Provider): void {
  (globalThis as Record<symbol, Provider | undefined>)[TASK_CONTEXT] = provider;
}
