/**
 * Coordination primitives held by the scheduler, for clients and tasks
 * (through their own clients): Semaphore (and Lock, a semaphore of one),
 * Event, Variable and Queue, each by name, as Dask's.
 *
 * - A semaphore's leases are held by the client that acquired them and
 *   refreshed by it while it lives; a lease is released when that client
 *   disconnects (its worker died: kill -9 closes the socket), or when it
 *   has not been refreshed for its lease timeout (a holder that hangs).
 * - A call that cannot be answered now (acquire with no lease free, wait on
 *   an event not set, get on an empty queue or an unset variable, put on a
 *   full queue) waits, first come first served, until it can or its timeout
 *   passes (then it is answered `ok: false`); a client that leaves takes its
 *   waiting calls with it.
 * - Values are msgpack bytes, opaque here, at most MAX_SYNC_VALUE_BYTES each.
 *   Names are per scheduler; a primitive nothing refers to any more (no
 *   lease, waiter, value or item, an event cleared) is forgotten.
 *
 * Pure: the time comes with each event (`s.now`), timeouts are checked on
 * ticks and whenever a call arrives.
 */
import { addWant, type SchedulerCore } from './core.ts';
import { ClientRecord, isNeeded, removeWanter } from './task-state.ts';
import type { SyncRequest } from '../protocol/messages.ts';
import type { Event, Holds, Item, Queue, Semaphore, Variable, Waiter } from './primitives.ts';

/** Items a Queue holds at most, whatever its maxsize. */
const MAX_ITEMS = 100_000;

function reply(s: SchedulerCore, c: ClientRecord, id: number, ok: boolean, extra: { value?: Uint8Array; key?: string; error?: string; size?: number } = {}): void {
  s.outbox.push(c.id, { op: 'sync-reply', id, ok, ...extra });
}

/**
 * A call that cannot be answered now: with `timeout: 0` it is answered `ok:
 * false` at once (and the primitive forgotten if idle), else it waits in
 * `list` until its timeout. `what`: a lease it waits to take, an item to put.
 */
function waitIn(s: SchedulerCore, c: ClientRecord, m: SyncRequest, key: string, list: Waiter[], what: { lease?: string; item?: Item } = {}): void {
  if (m.timeout === 0) {
    reply(s, c, m.id, false);
    return forgetIfIdle(s, key);
  }
  list.push({ client: c, id: m.id, deadline: m.timeout === undefined ? Infinity : s.now + m.timeout * 1000, ...what });
}

/** A client's call on a primitive. */
export function syncRequest(s: SchedulerCore, c: ClientRecord, m: SyncRequest): void {
  const key = `${m.kind}\u0000${m.name}`;
  let p = s.primitives.get(key);
  const fail = (error: string): void => reply(s, c, m.id, false, { error });
  switch (m.kind) {
    case 'semaphore': {
      if (p && p.kind !== 'semaphore') return fail('not a semaphore');
      if (!p) {
        if (m.action !== 'acquire') return reply(s, c, m.id, m.action === 'count', { size: 0 });
        p = { kind: 'semaphore', max: m.maxLeases ?? 1, leaseTimeoutMs: (m.leaseTimeout ?? 30) * 1000, leases: new Map(), waiters: [] };
        s.primitives.set(key, p);
      }
      const sem = p as Semaphore;
      if (m.action === 'acquire') {
        if (m.maxLeases !== undefined && m.maxLeases !== sem.max) return fail(`semaphore ${m.name} has ${sem.max} leases, not ${m.maxLeases}: one name, one size`);
        const lease = m.lease as string;
        if (sem.leases.size < sem.max && sem.waiters.length === 0) {
          sem.leases.set(lease, { client: c, expires: s.now + sem.leaseTimeoutMs });
          return reply(s, c, m.id, true);
        }
        return waitIn(s, c, m, key, sem.waiters, { lease });
      }
      if (m.action === 'release') {
        const held = sem.leases.get(m.lease as string);
        if (!held || held.client !== c) return fail(`no lease ${m.lease} of semaphore ${m.name} is held by this client (released already, or lapsed)`);
        sem.leases.delete(m.lease as string);
        grant(s, sem);
        forgetIfIdle(s, key);
        return reply(s, c, m.id, true);
      }
      if (m.action === 'refresh') {
        for (const l of m.leases ?? []) {
          const held = sem.leases.get(l);
          if (held && held.client === c) held.expires = s.now + sem.leaseTimeoutMs;
        }
        return;
      }
      return reply(s, c, m.id, true, { size: sem.leases.size });
    }
    case 'event': {
      if (p && p.kind !== 'event') return fail('not an event');
      const ev = (p as Event | undefined) ?? { kind: 'event' as const, set: false, waiters: [] };
      if (!p) s.primitives.set(key, ev);
      if (m.action === 'set') {
        ev.set = true;
        for (const w of ev.waiters) reply(s, w.client, w.id, true);
        ev.waiters = [];
        return reply(s, c, m.id, true);
      }
      if (m.action === 'clear') {
        ev.set = false;
        forgetIfIdle(s, key);
        return reply(s, c, m.id, true);
      }
      if (m.action === 'is-set') {
        reply(s, c, m.id, ev.set);
        return forgetIfIdle(s, key);
      }
      if (ev.set) return reply(s, c, m.id, true);
      return waitIn(s, c, m, key, ev.waiters);
    }
    case 'variable': {
      if (p && p.kind !== 'variable') return fail('not a variable');
      const v: Variable = (p as Variable | undefined) ?? { kind: 'variable' as const, value: null, waiters: [], holder: new ClientRecord(`(variable ${m.name})`), refs: new Map() };
      if (!p) s.primitives.set(key, v);
      if (m.action === 'set') {
        const item = itemOf(s, m);
        if (typeof item === 'string') return fail(item);
        keep(s, v, item);
        if (v.value) letGo(s, v, v.value);
        v.value = item;
        for (const w of v.waiters) handOut(s, w.client, w.id, item);
        v.waiters = [];
        return reply(s, c, m.id, true);
      }
      if (m.action === 'delete') {
        if (v.value) letGo(s, v, v.value);
        v.value = null;
        forgetIfIdle(s, key);
        return reply(s, c, m.id, true);
      }
      if (v.value !== null) return handOut(s, c, m.id, v.value);
      return waitIn(s, c, m, key, v.waiters);
    }
    case 'queue': {
      if (p && p.kind !== 'queue') return fail('not a queue');
      const maxsize = Math.min(MAX_ITEMS, m.maxsize ?? 0 ? (m.maxsize as number) : MAX_ITEMS);
      const q: Queue = (p as Queue | undefined) ?? { kind: 'queue' as const, maxsize, items: [], getters: [], putters: [], holder: new ClientRecord(`(queue ${m.name})`), refs: new Map() };
      if (!p) s.primitives.set(key, q);
      if (m.action === 'put') {
        const item = itemOf(s, m);
        if (typeof item === 'string') return fail(item);
        if (q.getters.length > 0) {
          const g = q.getters.shift() as Waiter;
          handOut(s, g.client, g.id, item);
          return reply(s, c, m.id, true);
        }
        if (q.items.length < q.maxsize) {
          keep(s, q, item);
          q.items.push(item);
          return reply(s, c, m.id, true);
        }
        if (m.timeout !== 0) keep(s, q, item);
        return waitIn(s, c, m, key, q.putters, { item });
      }
      if (m.action === 'qsize') {
        reply(s, c, m.id, true, { size: q.items.length });
        return forgetIfIdle(s, key);
      }
      const item = q.items.shift();
      if (item !== undefined) {
        // The getter wants it before the queue lets go: a future's result is never released in between.
        handOut(s, c, m.id, item);
        letGo(s, q, item);
        refill(s, q);
        return forgetIfIdle(s, key);
      }
      return waitIn(s, c, m, key, q.getters);
    }
  }
}

/** The item a set or put carries: its bytes, or a known task's key; or why not. */
function itemOf(s: SchedulerCore, m: SyncRequest): Item | string {
  if (m.key !== undefined) return s.tasks.has(m.key) ? { key: m.key } : `no task ${m.key.slice(0, 100)} on this scheduler (a future released already?)`;
  return { bytes: m.value as Uint8Array };
}

/** A held item's key stays wanted (by the primitive's own wanter) while an item names it. */
function keep(s: SchedulerCore, h: Holds, item: Item): void {
  if (!('key' in item)) return;
  const n = h.refs.get(item.key) ?? 0;
  h.refs.set(item.key, n + 1);
  const ts = s.tasks.get(item.key);
  if (n === 0 && ts) addWant(s, h.holder, ts);
}

function letGo(s: SchedulerCore, h: Holds, item: Item): void {
  if (!('key' in item)) return;
  const n = (h.refs.get(item.key) ?? 1) - 1;
  if (n > 0) {
    h.refs.set(item.key, n);
    return;
  }
  h.refs.delete(item.key);
  const ts = s.tasks.get(item.key);
  if (ts && removeWanter(ts, h.holder) && !isNeeded(ts)) s.releaseQ.push(ts);
}

/** Answers a get with an item: a key is wanted by the getter from now (its future, on its side). */
function handOut(s: SchedulerCore, c: ClientRecord, id: number, item: Item): void {
  if ('bytes' in item) return reply(s, c, id, true, { value: item.bytes });
  const ts = s.tasks.get(item.key);
  if (ts) addWant(s, c, ts);
  reply(s, c, id, true, { key: item.key });
}

/** Leases free: to the waiters, in order. */
function grant(s: SchedulerCore, sem: Semaphore): void {
  while (sem.leases.size < sem.max && sem.waiters.length > 0) {
    const w = sem.waiters.shift() as Waiter;
    sem.leases.set(w.lease as string, { client: w.client, expires: s.now + sem.leaseTimeoutMs });
    reply(s, w.client, w.id, true);
  }
}

/** Room in a queue: waiting puts go in, in order. */
function refill(s: SchedulerCore, q: Queue): void {
  while (q.items.length < q.maxsize && q.putters.length > 0) {
    const w = q.putters.shift() as Waiter;
    q.items.push(w.item as Item);
    reply(s, w.client, w.id, true);
  }
}

function forgetIfIdle(s: SchedulerCore, key: string): void {
  const p = s.primitives.get(key);
  if (!p) return;
  const idle =
    p.kind === 'semaphore' ? p.leases.size === 0 && p.waiters.length === 0
    : p.kind === 'event' ? !p.set && p.waiters.length === 0
    : p.kind === 'variable' ? p.value === null && p.waiters.length === 0
    : p.items.length === 0 && p.getters.length === 0 && p.putters.length === 0;
  if (idle) s.primitives.delete(key);
}

/** The clock: calls past their timeout are answered `ok: false`; leases not refreshed in time lapse. */
export function syncTick(s: SchedulerCore): void {
  if (s.primitives.size === 0) return;
  prune(
    s,
    (held, lease, key) => {
      if (held.expires > s.now) return false;
      s.logs.push({ level: 'warn', msg: 'semaphore lease lapsed', data: { key: key.split('\u0000')[1], lease } });
      return true;
    },
    (w) => {
      if (w.deadline > s.now) return false;
      reply(s, w.client, w.id, false);
      return true;
    },
  );
}

/** A client left: its leases are released and its waiting calls dropped. */
export function syncClientGone(s: SchedulerCore, c: ClientRecord): void {
  if (s.primitives.size === 0) return;
  prune(s, (held) => held.client === c, (w) => w.client === c);
}

/**
 * Drops the leases and waiting calls that `lapsed` and `drop` pick (the
 * latter answers them if it should), hands freed leases to waiters, lets go
 * of the items of dropped puts, and forgets what is left idle.
 */
function prune(s: SchedulerCore, lapsed: (held: { client: ClientRecord; expires: number }, lease: string, key: string) => boolean, drop: (w: Waiter) => boolean): void {
  for (const [key, p] of s.primitives) {
    const keepWaiting = (w: Waiter): boolean => !drop(w);
    if (p.kind === 'semaphore') {
      for (const [lease, held] of p.leases) if (lapsed(held, lease, key)) p.leases.delete(lease);
      p.waiters = p.waiters.filter(keepWaiting);
      grant(s, p);
    } else if (p.kind === 'queue') {
      p.getters = p.getters.filter(keepWaiting);
      p.putters = p.putters.filter((w) => {
        if (keepWaiting(w)) return true;
        letGo(s, p, w.item as Item);
        return false;
      });
    } else p.waiters = p.waiters.filter(keepWaiting);
    forgetIfIdle(s, key);
  }
}
