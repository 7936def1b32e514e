/**
 * The client's book of keys: a record per key it holds futures for (status,
 * error, where the result is, who waits), the tickets the scheduler answers
 * by, and the releases it owes the scheduler. No socket here: releases leave
 * through the `sendRelease` the client gives.
 */
import { CancelledError, WeftError } from '../errors.ts';
import { keyFits, type SchedulerToClient } from '../protocol/messages.ts';
import type { FutureStatus } from './future.ts';

/** One wait on many keys: a counter, not a promise per key. */
interface Waiter {
  left: number;
  settled: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface KeyState {
  readonly key: string;
  /** The record in the book for its key (so releasing needs no lookup to check). */
  held: boolean;
  /** Some accepted graph holds this key (a later rejected one must not fail it). */
  accepted: boolean;
  status: FutureStatus;
  error: Error | null;
  /** A worker that holds the result, as the scheduler last said. */
  where: string | null;
  refs: number;
  /** Who waits for this key: almost always one waiter, so no array until a second. */
  waiter: Waiter | null;
  moreWaiters: Waiter[] | null;
  /** The scheduler's handle for this record (see ticketOf); -1 until the key is first sent as wanted. */
  ticket: number;
  /** The value, while a `get` that fetched it runs (NO_COPY otherwise): given back if the key is lost (restore.ts). */
  copy: unknown;
}

/** KeyState.copy when there is none (a value may be undefined). */
export const NO_COPY: unique symbol = Symbol('no copy');

/**
 * A ticket is a slot of `byTicket` plus a sequence number times
 * TICKET_SLOTS, so that a notice about a record already released (its slot
 * reused since) matches no record.
 */
const TICKET_SLOTS = 2 ** 24;
const TICKET_SEQS = 2 ** 29;

/** Keys per release message. */
const RELEASE_CHUNK = 16_384;

export class KeyBook {
  private keys = new Map<string, KeyState>();
  /** Held records by ticket slot, and the free slots. */
  private byTicket: (KeyState | null)[] = [];
  private freeTickets: number[] = [];
  private ticketSeq = 0;
  private pendingRelease: string[] = [];
  private releaseScheduled = false;

  /** `sendRelease` tells the scheduler keys are released; it is not called while `closed()` is set. */
  constructor(
    private readonly sendRelease: (keys: string[]) => void,
    private readonly closed: () => Error | null,
  ) {}

  get(key: string): KeyState | undefined {
    return this.keys.get(key);
  }

  /** The key's record, or a cancelled one when this client holds no future for it. */
  getOrCancelled(key: string): KeyState {
    return this.keys.get(key) ?? cancelledState(key);
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  status(key: string): FutureStatus {
    return this.keys.get(key)?.status ?? 'cancelled';
  }

  /** One more reference to a key; its record. */
  hold(key: string): KeyState {
    const ks = this.keys.get(key);
    if (ks) {
      ks.refs++;
      return ks;
    }
    const fresh: KeyState = { key, held: true, accepted: false, status: 'pending', error: null, where: null, refs: 1, waiter: null, moreWaiters: null, ticket: -1, copy: NO_COPY };
    this.keys.set(key, fresh);
    return fresh;
  }

  /** One reference fewer; the last one releases the key on the scheduler (batched, on the next turn). */
  release(ks: KeyState): void {
    if (--ks.refs > 0 || !ks.held) return;
    this.forget(ks);
    this.pendingRelease.push(ks.key);
    this.scheduleReleases();
  }

  /** Keys sent in a graph that failed to build: released on the next turn unless held by then. */
  releaseSent(keys: readonly string[]): void {
    for (const k of keys) this.pendingRelease.push(k);
    this.scheduleReleases();
  }

  /** The record's ticket, given on first use (-1 when every slot is taken: then it goes by key). */
  ticketOf(ks: KeyState): number {
    if (ks.ticket >= 0 || !ks.held) return ks.ticket;
    let slot = this.freeTickets.pop();
    if (slot === undefined) {
      if (this.byTicket.length >= TICKET_SLOTS) return -1;
      slot = this.byTicket.push(null) - 1;
    }
    this.byTicket[slot] = ks;
    this.ticketSeq = (this.ticketSeq + 1) % TICKET_SEQS;
    ks.ticket = this.ticketSeq * TICKET_SLOTS + slot;
    return ks.ticket;
  }

  /** Takes a record off the books (its ticket's slot is free again). */
  private forget(ks: KeyState): void {
    ks.held = false;
    this.keys.delete(ks.key);
    if (ks.ticket >= 0) {
      const slot = ks.ticket % TICKET_SLOTS;
      this.byTicket[slot] = null;
      this.freeTickets.push(slot);
      ks.ticket = -1;
    }
  }

  private scheduleReleases(): void {
    if (!this.releaseScheduled) {
      this.releaseScheduled = true;
      setImmediate(() => this.flushReleases());
    }
  }

  /** Sends the releases owed now (the client's close calls it before the connection goes). */
  flushReleases(): void {
    this.releaseScheduled = false;
    if (this.pendingRelease.length === 0 || this.closed()) return;
    // A key held again since it was released (same work submitted again) stays
    // wanted; one the scheduler cannot have (refused for its length) is not sent.
    const keys = this.pendingRelease.filter((k) => !this.keys.has(k) && keyFits(k));
    this.pendingRelease = [];
    // In messages of RELEASE_CHUNK keys: the scheduler decodes and handles each in one turn, and a million at once would stall it.
    for (let i = 0; i < keys.length; i += RELEASE_CHUNK) this.sendRelease(i === 0 && keys.length <= RELEASE_CHUNK ? keys : keys.slice(i, i + RELEASE_CHUNK));
  }

  /** Cancels keys here (their waiters fail); returns the ones to release on the scheduler. */
  cancel(keys: readonly string[]): string[] {
    const toRelease: string[] = [];
    for (const key of keys) {
      const ks = this.keys.get(key);
      if (!ks) continue;
      this.forget(ks);
      if (ks.status === 'pending' || ks.status === 'lost') {
        ks.status = 'cancelled';
        ks.error = new CancelledError(`future ${key} was cancelled`);
        this.wake(ks, ks.error);
      }
      if (keyFits(key)) toRelease.push(key);
    }
    return toRelease;
  }

  // ------------------------------------------------------------------ waiting

  /** Resolves when every record has finished; rejects with the first error. */
  wait(states: readonly KeyState[]): Promise<void> {
    const closed = this.closed();
    if (closed) return Promise.reject(closed);
    return new Promise((resolve, reject) => {
      const w: Waiter = { left: 0, settled: false, resolve, reject };
      for (const ks of states) {
        if (ks.status === 'finished') continue;
        if (ks.status === 'error' || ks.status === 'cancelled') return reject(ks.error ?? new CancelledError(`future ${ks.key} was cancelled or released`));
        w.left++;
        if (ks.waiter === null) ks.waiter = w;
        else (ks.moreWaiters ??= []).push(w);
      }
      if (w.left === 0) {
        w.settled = true;
        resolve();
      }
    });
  }

  settle(key: string, status: FutureStatus, error: Error | null): void {
    const ks = this.keys.get(key);
    if (ks) this.settleState(ks, status, error);
  }

  settleState(ks: KeyState, status: FutureStatus, error: Error | null): void {
    ks.status = status;
    ks.error = error;
    if (status === 'pending') return;
    this.wake(ks, status === 'finished' ? null : (error ?? new WeftError(`future ${ks.key} ended as ${status}`)));
  }

  /** Counts a key off its waiters (finished), or fails them (error). */
  private wake(ks: KeyState, error: Error | null): void {
    const first = ks.waiter;
    const more = ks.moreWaiters;
    ks.waiter = null;
    ks.moreWaiters = null;
    if (first) wakeOne(first, error);
    if (more) for (const w of more) wakeOne(w, error);
  }

  // ------------------------------------------------------------------ what the scheduler says

  /** Results in memory, by ticket and by key. */
  inMemory(m: Extract<SchedulerToClient, { op: 'in-memory' }>): void {
    for (let i = 0; i < m.tickets.length; i++) {
      const t = m.tickets[i] as number;
      const ks = this.byTicket[t % TICKET_SLOTS];
      // Released since (the slot is empty or holds a later record): nothing to tell.
      if (!ks || ks.ticket !== t) continue;
      ks.where = m.addresses[m.ticketHolder[i] as number] ?? null;
      this.settleState(ks, 'finished', null);
    }
    for (let i = 0; i < m.keys.length; i++) {
      const ks = this.keys.get(m.keys[i] as string);
      if (!ks) continue;
      ks.where = m.addresses[m.holder[i] as number] ?? null;
      this.settleState(ks, 'finished', null);
    }
  }

  /** Results lost with their workers: pending again (the scheduler recomputes them). Returns their records. */
  lost(keys: readonly string[]): KeyState[] {
    const out: KeyState[] = [];
    for (const k of keys) {
      const ks = this.keys.get(k);
      if (!ks) continue;
      if (ks.status === 'finished') ks.status = 'pending';
      ks.where = null;
      out.push(ks);
    }
    return out;
  }

  /** The cluster restarted: every record is cancelled; the scheduler holds none of them. */
  restarted(error: Error): void {
    for (const ks of this.keys.values()) {
      ks.held = false;
      ks.where = null;
      if (ks.status === 'cancelled') continue;
      ks.status = 'cancelled';
      ks.error = error;
      this.wake(ks, error);
    }
  }

  /** The connection was lost: what was not done is lost (its waiters fail with `error`). */
  connectionLost(error: Error): void {
    for (const ks of this.keys.values()) {
      if (ks.status === 'finished' || ks.status === 'error') continue;
      ks.status = 'lost';
      this.wake(ks, error);
    }
  }

  /** Connected to a new scheduler: it holds none of the records, and no result of before. */
  reconnected(): void {
    for (const ks of this.keys.values()) {
      ks.held = false;
      if (ks.status === 'finished') ks.status = 'lost';
    }
  }
}

/** The record of a key this client holds no future for. */
function cancelledState(key: string): KeyState {
  return { key, held: false, accepted: false, status: 'cancelled', error: new CancelledError(`future ${key} was cancelled or released`), where: null, refs: 0, waiter: null, moreWaiters: null, ticket: -1, copy: NO_COPY };
}

function wakeOne(w: Waiter, error: Error | null): void {
  if (w.settled) return;
  if (error) {
    w.settled = true;
    w.reject(error);
  } else if (--w.left === 0) {
    w.settled = true;
    w.resolve();
  }
}
