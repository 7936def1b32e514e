/**
 * Fetching results from the workers that hold them (gather): by worker,
 * in chunks, first from where the scheduler last said each key is, then
 * from where it says now; a worker gone or silent for the gather timeout
 * is asked no more, and its keys come from elsewhere. Round after round
 * until every value is here:
 * - A key lost since the last round (its worker died) is waited for until
 *   it is computed again; such rounds go on as long as the cluster computes
 *   (at most MAX_ROUNDS).
 * - A key this client still knows as in memory, but found nowhere, has a
 *   stale holder: a worker just killed stays named until the scheduler sees
 *   its connection close, which takes longer than a refused connect when
 *   the scheduler is busy or stopped (a chaos test's CI failure). Such
 *   rounds back off, and STALE_ROUNDS of them in a row give up.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeSequence } from '../protocol/codec.ts';
import type { WorkerToPeer } from '../protocol/messages.ts';
import { DataLostError, WeftError } from '../errors.ts';

/** Keys per request to one worker. */
export const GATHER_CHUNK = 20_000;

/** Rounds in a row with only stale holders, and the back-off before each (doubling, at most BACKOFF_MAX_MS): 7 s of pauses in all. */
const STALE_ROUNDS = 8;
const BACKOFF_MS = 100;
const BACKOFF_MAX_MS = 2000;
/** Rounds in all: keys lost again and again (workers dying as fast as they compute them) fail in the end. */
const MAX_ROUNDS = 64;

/** A key to fetch, and where the scheduler last said it is. */
export interface Fetchable {
  readonly key: string;
  where: string | null;
}

/** What fetching needs of the client. */
export interface Fetcher<S extends Fetchable> {
  /** Resolves once these are in memory again (after a round that missed them). */
  wait(states: S[]): Promise<void>;
  /** Whether this key's result is in memory, as the scheduler last told this client. */
  inMemory(state: S): boolean;
  /** Where each key is now (a worker's address, or undefined). */
  whoHas(keys: string[]): Promise<(string | undefined)[]>;
  get(address: string, keys: readonly string[]): Promise<WorkerToPeer>;
  /** Forgets the connection to a worker that went silent. */
  drop(address: string): void;
  log(data: Record<string, unknown>, msg: string): void;
  timeoutMs(): number;
}

export async function fetchValues<S extends Fetchable>(f: Fetcher<S>, states: readonly S[]): Promise<unknown[]> {
  const out: unknown[] = new Array(states.length);
  let todo: number[] = states.map((_, i) => i);
  let stale = 0;
  for (let round = 0; todo.length > 0; round++) {
    if (round > 0) {
      const left = todo.map((i) => states[i] as S);
      // Some lost since: this round waits for them to be computed again. Else every holder named was stale: back off.
      stale = left.some((st) => !f.inMemory(st)) ? 0 : stale + 1;
      if (stale >= STALE_ROUNDS || round >= MAX_ROUNDS) break;
      await Promise.all([f.wait(left), stale > 0 ? sleep(Math.min(BACKOFF_MS * 2 ** (stale - 1), BACKOFF_MAX_MS)) : null]);
    }
    const missing: number[] = [];
    // First from where the scheduler said each key is, then from where it says now.
    const { perWorker, unknown } = byHolder(states, todo, round === 0);
    if (unknown.length > 0) {
      const where = await f.whoHas(unknown.map((i) => (states[i] as S).key));
      unknown.forEach((i, n) => addToHolder(perWorker, missing, i, where[n]));
    }
    const requests: Promise<void>[] = [];
    for (const [address, idx] of perWorker) {
      for (let c = 0; c < idx.length; c += GATHER_CHUNK) requests.push(fetchFrom(f, address, states, idx.slice(c, c + GATHER_CHUNK), out, missing));
    }
    await Promise.all(requests);
    todo = missing;
  }
  if (todo.length > 0) throw new DataLostError(`could not fetch ${todo.length} result(s) from the workers (first: ${(states[todo[0] as number] as S).key}); they may have been released or lost`);
  return out;
}

/** Fetches the values of `states[i]` for each i of `chunk` from one worker into `out`; what it cannot get goes to `missing`. */
async function fetchFrom<S extends Fetchable>(f: Fetcher<S>, address: string, states: readonly S[], chunk: number[], out: unknown[], missing: number[]): Promise<void> {
  const keys = chunk.map((i) => (states[i] as S).key);
  let r: WorkerToPeer;
  let timer: NodeJS.Timeout | undefined;
  try {
    const ms = f.timeoutMs();
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WeftError(`worker ${address} sent nothing for ${ms / 1000} s`)), ms);
    });
    r = await Promise.race([f.get(address, keys), silent]);
  } catch (err) {
    // Gone or stalled: these come from elsewhere (the next attempt asks the scheduler where).
    if (err instanceof WeftError && /sent nothing/.test(err.message)) {
      f.log({ worker: address, keys: keys.length }, err.message);
      f.drop(address);
    }
    for (const i of chunk) missing.push(i);
    return;
  } finally {
    clearTimeout(timer);
  }
  if (r.op !== 'data' || !r.packed) throw new WeftError(`unexpected reply to get: ${r.op}`);
  takeValues(address, r.missing, r.blobs, chunk, keys, out, missing);
}

/** Groups `todo` (indices of `states`) by the worker said to hold each; without `useWhere`, or where none is known, into `unknown`. */
function byHolder(states: readonly Fetchable[], todo: readonly number[], useWhere: boolean): { perWorker: Map<string, number[]>; unknown: number[] } {
  const perWorker = new Map<string, number[]>();
  const unknown: number[] = [];
  for (let n = 0; n < todo.length; n++) {
    const i = todo[n] as number;
    const where = useWhere ? (states[i] as Fetchable).where : null;
    if (where) addToHolder(perWorker, unknown, i, where);
    else unknown.push(i);
  }
  return { perWorker, unknown };
}

function addToHolder(perWorker: Map<string, number[]>, none: number[], i: number, w: string | undefined | null): void {
  if (!w) {
    none.push(i);
    return;
  }
  const list = perWorker.get(w);
  if (list) list.push(i);
  else perWorker.set(w, [i]);
}

/**
 * Puts the values of a packed `data` reply into `out`: they come in the
 * order asked for, without the keys the worker did not have (to `missing`).
 */
function takeValues(address: string, gone: readonly string[], packed: readonly (Uint8Array | null)[], chunk: readonly number[], keys: readonly string[], out: unknown[], missing: number[]): void {
  const goneSet = gone.length > 0 ? new Set(gone) : null;
  const values = packed.length === 1 ? decodeSequence(packed[0] ?? new Uint8Array(0)) : packed.flatMap((b) => (b ? decodeSequence(b) : []));
  let v = 0;
  for (let j = 0; j < chunk.length; j++) {
    const i = chunk[j] as number;
    if (goneSet?.has(keys[j] as string)) missing.push(i);
    else out[i] = values[v++];
  }
  if (v !== values.length) throw new WeftError(`worker ${address} sent ${values.length} values for ${chunk.length - (goneSet?.size ?? 0)} keys`);
}
