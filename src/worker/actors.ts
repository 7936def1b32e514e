/**
 * Actors (Dask's `actor=True`): a stateful object made by a task on one
 * worker's executor thread and kept there; its methods are called straight
 * on that worker (client/actor.ts), one after another as they arrive.
 *
 * `newActor` is the task that makes one: it runs in the executor thread,
 * hands the object to the thread's host (executor-thread.ts installs it,
 * under a global so that whichever copy of weft a task module loads finds
 * it), and returns a small marker, the task's result, which the scheduler
 * keeps on that worker like any result. If the worker dies, the scheduler
 * runs the task again elsewhere: a new object, its state from scratch.
 */
import { WeftError } from '../errors.ts';

export const ACTOR_HOST = Symbol.for('weft.actorHost');

/** What the executor thread offers: keeping an object under an id. */
export interface ActorHost {
  keep(actorId: string, instance: object): void;
  resolveClass(ref: string): Promise<unknown>;
}

/** The task that makes actor `actorId`: `new Cls(...args)`, kept on this thread. */
export async function newActor(actorId: string, classRef: string, args: unknown[]): Promise<{ actor: string }> {
  const host = (globalThis as Record<symbol, ActorHost | undefined>)[ACTOR_HOST];
  if (!host) throw new WeftError('actors are made only in a worker executor thread');
  const Cls = await host.resolveClass(classRef);
  if (typeof Cls !== 'function') throw new WeftError(`${classRef} is not a class (got ${typeof Cls})`);
  const instance = new (Cls as new (...a: unknown[]) => object)(...args);
  host.keep(actorId, instance);
  return { actor: actorId };
}
