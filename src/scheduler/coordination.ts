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
 * - Values are msgpack bytes, opaque here, at most MAX_VALUE_BYTES each.
 *   Names are per scheduler; a primitive nothing refers to any more (no
 *   lease, waiter, value or item, an event cleared) is forgotten.
 *
 * Pure: the time comes with each event (`s.now`), timeouts are checked on
 * ticks and whenever a call arrives.
 */
import type { SchedulerCore } from './core.ts';
import type { ClientRecord } from './task-state.ts';
import type { SyncRequest } from '../protocol/messages.ts';
import type { Event, Queue, Semaphore, Variable, Waiter } from './primitives.ts';

/** The largest value a Variable or Queue holds, encoded. */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Items a Queue holds at most, whatever its maxsize. */
const MAX_ITEMS = 100_000;

function reply(s: SchedulerCore, c: ClientRecord, id: number, ok: boolean, extra: { value?: Uint8Array; error?: string; size?: number } = {}): void {
  s.outbox.push(c.id, { op: 'sync-reply', id, ok, ...extra });
}

function deadline(s: SchedulerCore, timeout: number | undefined): number {
  return timeout === undefined ? Infinity : s.now + timeout * 1000;
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
        if (m.timeout === 0) return reply(s, c, m.id, false);
        sem.waiters.push({ client: c, id: m.id, deadline: deadline(s, m.timeout), lease });
        return;
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
      if (m.timeout === 0) {
        reply(s, c, m.id, false);
        return forgetIfIdle(s, key);
      }
      ev.waiters.push({ client: c, id: m.id, deadline: deadline(s, m.timeout) });
      return;
    }
    case 'variable': {
      if (p && p.kind !== 'variable') return fail('not a variable');
      const v = (p as Variable | undefined) ?? { kind: 'variable' as const, value: null, waiters: [] };
      if (!p) s.primitives.set(key, v);
      if (m.action === 'set') {
        v.value = m.value as Uint8Array;
        for (const w of v.waiters) reply(s, w.client, w.id, true, { value: v.value });
        v.waiters = [];
        return reply(s, c, m.id, true);
      }
      if (m.action === 'delete') {
        v.value = null;
        forgetIfIdle(s, key);
        return reply(s, c, m.id, true);
      }
      if (v.value !== null) return reply(s, c, m.id, true, { value: v.value });
      if (m.timeout === 0) {
        reply(s, c, m.id, false);
        return forgetIfIdle(s, key);
      }
      v.waiters.push({ client: c, id: m.id, deadline: deadline(s, m.timeout) });
      return;
    }
    case 'queue': {
      if (p && p.kind !== 'queue') return fail('not a queue');
      const maxsize = Math.min(MAX_ITEMS, m.maxsize ?? 0 ? (m.maxsize as number) : MAX_ITEMS);
      const q = (p as Queue | undefined) ?? { kind: 'queue' as const, maxsize, items: [], getters: [], putters: [] };
      if (!p) s.primitives.set(key, q);
      if (m.action === 'put') {
        if (q.getters.length > 0) {
          const g = q.getters.shift() as Waiter;
          reply(s, g.client, g.id, true, { value: m.value as Uint8Array });
          return reply(s, c, m.id, true);
        }
        if (q.items.length < q.maxsize) {
          q.items.push(m.value as Uint8Array);
          return reply(s, c, m.id, true);
        }
        if (m.timeout === 0) return reply(s, c, m.id, false);
        q.putters.push({ client: c, id: m.id, deadline: deadline(s, m.timeout), value: m.value as Uint8Array });
        return;
      }
      if (m.action === 'qsize') {
        reply(s, c, m.id, true, { size: q.items.length });
        return forgetIfIdle(s, key);
      }
      const item = q.items.shift();
      if (item !== undefined) {
        refill(s, q);
        reply(s, c, m.id, true, { value: item });
        return forgetIfIdle(s, key);
      }
      if (m.timeout === 0) {
        reply(s, c, m.id, false);
        return forgetIfIdle(s, key);
      }
      q.getters.push({ client: c, id: m.id, deadline: deadline(s, m.timeout) });
      return;
    }
  }
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
    q.items.push(w.value as Uint8Array);
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
  const due = (w: Waiter): boolean => {
    if (w.deadline > s.now) return false;
    reply(s, w.client, w.id, false);
    return true;
  };
  for (const [key, p] of s.primitives) {
    if (p.kind === 'semaphore') {
      for (const [lease, held] of p.leases) {
        if (held.expires > s.now) continue;
        p.leases.delete(lease);
        s.logs.push({ level: 'warn', msg: 'semaphore lease lapsed', data: { key: key.split('\u0000')[1], lease } });
      }
      p.waiters = p.waiters.filter((w) => !due(w));
      grant(s, p);
    } else if (p.kind === 'queue') {
      p.getters = p.getters.filter((w) => !due(w));
      p.putters = p.putters.filter((w) => !due(w));
    } else p.waiters = p.waiters.filter((w) => !due(w));
    forgetIfIdle(s, key);
  }
}

/** A client left: its leases are released and its waiting calls dropped. */
export function syncClientGone(s: SchedulerCore, c: ClientRecord): void {
  if (s.primitives.size === 0) return;
  for (const [key, p] of s.primitives) {
    const mine = (w: Waiter): boolean => w.client !== c;
    if (p.kind === 'semaphore') {
      for (const [lease, held] of p.leases) if (held.client === c) p.leases.delete(lease);
      p.waiters = p.waiters.filter(mine);
      grant(s, p);
    } else if (p.kind === 'queue') {
      p.getters = p.getters.filter(mine);
      p.putters = p.putters.filter(mine);
    } else p.waiters = p.waiters.filter(mine);
    forgetIfIdle(s, key);
  }
}
