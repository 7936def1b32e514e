/**
 * Results a client gives back: values of keys it wants that it had fetched
 * (a `get` keeps each value it has until the call returns), lost since with
 * their worker. The client put them on a worker; each such key this client
 * still wants, and that is not in memory again, is in memory there now, and
 * its computation again stops: the lost result costs a round trip, not its
 * task again and the tasks of its lost inputs. A key the client does not
 * want, or that another worker already holds, is freed there or kept as one
 * more copy.
 */
import { addHolder, type ClientRecord, type TaskState } from './task-state.ts';
import type { SchedulerCore } from './core.ts';
import { detachFromWorker, toMemory } from './transitions.ts';

/** Worker `address` holds `keys` (sizes `nbytes`), put there by client `c`. */
export function restored(s: SchedulerCore, c: ClientRecord, keys: readonly string[], nbytes: ArrayLike<number>, address: string): void {
  // Gone since: the values went with it, and the keys are being computed again.
  const w = s.byAddress.get(address);
  if (!w) return;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const ts = s.tasks.get(key);
    if (!ts || ts.fn === null || !wantedBy(ts, c) || ts.state === 'erred' || ts.state === 'forgotten') {
      s.outbox.key(w.id, 'free', key);
      continue;
    }
    const n = nbytes[i] ?? 0;
    if (ts.state !== 'memory') {
      if (ts.state === 'processing') {
        // Computed again right now: that run stops (its result, if it crosses this, is dropped: taskFinished).
        // On the worker given the value, the task finds it there and reports it done (no free: that would drop the value).
        const busy = ts.flight?.worker;
        detachFromWorker(s, ts);
        if (busy && busy !== w) s.outbox.key(busy.id, 'free', key);
      } else if (ts.state === 'no-worker') s.noWorker.delete(ts);
      // (A queued task's entry in the queue is skipped when popped.)
      ts.nbytes = n;
    } else if (ts.whoHas.includes(w)) continue;
    addHolder(ts, w);
    w.stored++;
    w.storedBytes += n;
    // Its inputs computed again for it are released with it (setState), unless something else still needs them.
    if (ts.state !== 'memory') toMemory(s, ts);
  }
}

function wantedBy(ts: TaskState, c: ClientRecord): boolean {
  return ts.wanter === c || (ts.rare?.moreWanters?.includes(c) ?? false);
}
