/**
 * Computing a graph too large to hold (client.getAll): its entries are read
 * once, as they are sent, a part at a time; at most `window` of its tasks are
 * out on the cluster at once (sending waits for values to come back), and a
 * value nothing sent so far takes as an input is released on the cluster as
 * soon as it is here. Ten million tasks then need the memory of a window,
 * in this client, the scheduler and the workers, not that of the graph.
 */
import { GraphError, WeftError } from '../errors.ts';
import { GraphBuilder, type TaskDef } from './graph.ts';
import type { KeyBook, KeyState } from './keys.ts';
import type { GraphSender } from './submit.ts';

/** What computing a stream of entries needs of the client. */
export interface StreamLink {
  readonly book: KeyBook;
  readonly sender: GraphSender;
  /** The values of these keys, once they are all in memory (waits for them). */
  fetch(states: KeyState[]): Promise<unknown[]>;
  /** Sends what the connection has queued now, not at the end of this turn. */
  flush(): void;
}

export interface GetAllOptions {
  /** Tasks out on the cluster at most (sent, their values not yet back). Default 262,144. */
  window?: number;
}

/** Tasks per part sent. */
const PART = 4_096;
const DEFAULT_WINDOW = 262_144;

/** One part sent: where its values go, and its records. */
interface Part {
  offset: number;
  states: KeyState[];
  values: unknown[] | null;
}

export async function getAll(link: StreamLink, entries: Iterable<readonly [string, TaskDef]>, opts: GetAllOptions = {}): Promise<unknown[]> {
  const window = opts.window ?? DEFAULT_WINDOW;
  if (!Number.isInteger(window) || window < 1) throw new WeftError(`getAll's window must be a positive integer (got ${String(window)})`);
  const book = link.book;
  const out: unknown[] = [];
  // Parts whose values are back but not yet in `out` (an earlier part is still out), by offset.
  const done = new Map<number, Part>();
  // Keys that an entry sent so far takes as an input: held until the end, not released as they come.
  const taken = new Set<string>();
  const held: KeyState[] = [];
  // Values back and not yet released: let go of when the window is full, or after the call (as get does), so a graph within the window costs the cluster no releases while it runs.
  let back: KeyState[] = [];
  // Tasks sent and not released (out, or back and kept).
  let onCluster = 0;
  let count = 0;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const inFlight: Promise<void>[] = [];

  const landed = (part: Part): void => {
    done.set(part.offset, part);
    // Values go into `out` in order, so that it stays a packed array.
    for (let p = done.get(out.length); p; p = done.get(out.length)) {
      done.delete(p.offset);
      for (const v of p.values as unknown[]) out.push(v);
    }
    for (const ks of part.states) {
      if (!taken.has(ks.key)) back.push(ks);
      else {
        // Kept to the end for the entries that take it: it no longer counts against the window (or nothing could free it).
        held.push(ks);
        onCluster--;
      }
    }
    wake?.();
  };

  const releaseBack = (): void => {
    onCluster -= back.length;
    // One taken since it came back is kept to the end too.
    for (const ks of back) {
      if (taken.has(ks.key)) held.push(ks);
      else book.release(ks);
    }
    back = [];
  };

  const send = async (b: GraphBuilder, states: KeyState[]): Promise<void> => {
    while (onCluster >= window && !failure) {
      if (back.length > 0) releaseBack();
      else await new Promise<void>((resolve) => (wake = resolve));
    }
    wake = null;
    if (failure) throw failure;
    const part: Part = { offset: count, states, values: null };
    count += states.length;
    onCluster += states.length;
    const wants = states.map((_, i) => i);
    const p = link.sender
      .send(b, wants, [], 0, (i) => states[i])
      .then(() => link.fetch(states))
      .then((values) => {
        part.values = values;
        landed(part);
      })
      .catch((err: unknown) => {
        failure ??= err instanceof Error ? err : new WeftError(String(err));
        for (const ks of states) book.release(ks);
        wake?.();
      });
    inFlight.push(p);
    link.flush();
  };

  let b = new GraphBuilder();
  let states: KeyState[] = [];
  let partSize = 1_024;
  try {
    for (const entry of entries) {
      if (failure) break;
      const [key, def] = entry;
      if (typeof key !== 'string' || !def || (typeof def.fn !== 'string' && typeof def.fn !== 'function')) throw new GraphError(`entry ${String(key).slice(0, 100)} needs a string key and a task with a fn (a "module#export" string or a function)`, [String(key)]);
      b.add(def.fn, def.args ?? [], def, key);
      if (b.lastDeps > 0) for (const d of b.lastDepKeys()) taken.add(d);
      states.push(book.hold(key));
      if (b.size >= partSize) {
        await send(b, states);
        b = new GraphBuilder();
        states = [];
        // The first part small, so that the cluster starts at once; then larger ones.
        partSize = PART;
      }
    }
    if (states.length > 0 && !failure) await send(b, states);
    else for (const ks of states) book.release(ks);
    await Promise.all(inFlight);
    if (failure) throw failure;
    if (done.size > 0) throw new WeftError(`getAll: ${done.size} part(s) came back out of order and were not placed (a bug in weft)`);
    return out;
  } catch (err) {
    failure ??= err instanceof Error ? err : new WeftError(String(err));
    for (const ks of states) book.release(ks);
    await Promise.allSettled(inFlight);
    throw failure;
  } finally {
    // On the next turn, as get does: the caller has its values without waiting for the bookkeeping.
    const rest = [...held, ...back];
    back = [];
    setImmediate(() => {
      for (const ks of rest) book.release(ks);
    });
  }
}
