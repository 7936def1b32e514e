/**
 * Actors from the client's side (the worker's: worker/actors.ts). Making
 * one submits the task that constructs it; the handle calls its methods
 * straight on the worker holding it (found with who-has), each call a
 * request to that worker's data port, never through the scheduler.
 *
 * Its worker dies: the call in flight fails with ActorLostError, and the
 * scheduler makes the actor again on another worker (its task's result
 * was lost while the handle still wants it): later calls go there, the
 * object's state from scratch. Dask's actors are lost for good then.
 */
import { randomUUID } from 'node:crypto';
import { ActorLostError, TaskError, WeftError } from '../errors.ts';
import { decode, encodeOwned } from '../protocol/codec.ts';
import { weftModule } from '../util/self.ts';
import type { Future } from './future.ts';
import type { WorkerToPeer } from '../protocol/messages.ts';
import type { PeerRequest } from '../protocol/peers.ts';

/** What an actor needs of the client that made it (Client has it; named here, not imported: client.ts imports this module). */
export interface ActorClient {
  submitWith<T>(opts: { pure: boolean }, fn: string, ...args: unknown[]): Future<T>;
  whoHas(futures: readonly Future[]): Promise<Record<string, string[]>>;
  requestWorker(address: string, msg: PeerRequest): Promise<WorkerToPeer>;
}


const NEW_ACTOR = `${weftModule('worker/actors').href}#newActor`;
/** How long a call waits for an actor lost with its worker to be made again. */
const RESOLVE_MS = 30_000;

/** An actor's methods, each returning a promise of its value; `future` is the task that made it. */
export type ActorHandle<T> = {
  [K in keyof T as T[K] extends (...a: never[]) => unknown ? (K extends `_${string}` ? never : K) : never]: T[K] extends (...a: infer A) => infer R ? (...a: A) => Promise<Awaited<R>> : never;
} & {
  /** The task that made it: released (or `release()`), the actor goes. */
  readonly future: Future;
  release(): void;
};

export async function makeActor<T extends object>(client: ActorClient, cls: string, args: unknown[]): Promise<ActorHandle<T>> {
  const id = randomUUID();
  const future = client.submitWith<{ actor: string }>({ pure: false }, NEW_ACTOR, id, cls, args);
  await future.done();
  let holder: string | null = null;
  /** Workers a call was lost with: the scheduler may not have noticed yet, so who-has may still name them. */
  const dead = new Set<string>();
  /** The worker holding it: after its worker died, once the scheduler has made it again (at most RESOLVE_MS). */
  const resolve = async (): Promise<string> => {
    const until = Date.now() + RESOLVE_MS;
    for (;;) {
      await future.done();
      const h = (await client.whoHas([future]))[future.key]?.[0];
      if (h !== undefined && !dead.has(h)) return h;
      if (future.status === 'cancelled' || Date.now() > until) throw new ActorLostError(`actor ${cls} is on no worker now (released, or not made again within ${RESOLVE_MS / 1000} s)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const call = async (method: string, callArgs: unknown[]): Promise<unknown> => {
    holder ??= await resolve();
    const at = holder;
    let reply;
    try {
      reply = await client.requestWorker(at, { op: 'actor-call', actor: id, method, args: encodeOwned(callArgs) });
    } catch (err) {
      dead.add(at);
      holder = null;
      throw new ActorLostError(`the call ${method} on actor ${cls} was lost with its worker ${at} (${(err as Error).message}); the actor is made again elsewhere, its state from scratch`);
    }
    if (reply.op !== 'actor-reply') throw new WeftError(`unexpected reply to an actor call: ${reply.op}`);
    if (reply.error) {
      if (reply.error.name === 'ActorLostError') {
        holder = null;
        throw new ActorLostError(reply.error.message);
      }
      throw new TaskError(`${future.key}.${method}`, reply.error);
    }
    return reply.value === undefined ? undefined : decode(reply.value);
  };
  const base = { future, release: () => future.release() };
  return new Proxy(base, {
    get(target, prop, receiver) {
      if (prop in target || typeof prop === 'symbol') return Reflect.get(target, prop, receiver);
      // A promise's `then` is not a method: awaiting a handle gives the handle.
      if (prop === 'then') return undefined;
      return (...a: unknown[]) => call(prop, a);
    },
  }) as unknown as ActorHandle<T>;
}
