/**
 * What a task can reach of the worker running it: publish events that
 * subscribed clients receive while the task runs, and a signal that aborts
 * when the task is cancelled.
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
}

export const TASK_CONTEXT = Symbol.for('weft.taskContext');

type Provider = () => TaskContext | null;

/** The context of the task running now on this thread; throws outside a task. */
export function taskContext(): TaskContext {
  const provider = (globalThis as Record<symbol, Provider | undefined>)[TASK_CONTEXT];
  const ctx = provider?.() ?? null;
  if (!ctx) throw new WeftError('taskContext() was called outside a running weft task: call it from a task function while that task runs');
  return ctx;
}

/** Installs the function that gives the running task's context (the executor thread does). */
export function provideTaskContext(provider: Provider): void {
  (globalThis as Record<symbol, Provider | undefined>)[TASK_CONTEXT] = provider;
}
