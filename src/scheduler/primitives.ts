/**
 * The state of the coordination primitives a scheduler holds (its calls:
 * coordination.ts), apart so that the scheduler's state can hold them.
 */
import type { ClientRecord } from './task-state.ts';

export interface Waiter {
  client: ClientRecord;
  id: number;
  /** When it is answered `ok: false` (ms, scheduler time); Infinity: never. */
  deadline: number;
  /** What it waits to do (a lease to take, an item to put). */
  lease?: string;
  item?: Item;
}

/** A value held by a Variable or Queue: msgpack bytes, or a task's key (a future), which the primitive keeps wanted while it holds it. */
export type Item = { bytes: Uint8Array } | { key: string };

/** What holds the keys a Variable's or Queue's items name: a wanter of its own, and how many items name each key. */
export interface Holds {
  holder: ClientRecord;
  refs: Map<string, number>;
}

export interface Semaphore {
  kind: 'semaphore';
  max: number;
  leaseTimeoutMs: number;
  /** Leases held: id -> holder and when it lapses unless refreshed. */
  leases: Map<string, { client: ClientRecord; expires: number }>;
  waiters: Waiter[];
}
export interface Event {
  kind: 'event';
  set: boolean;
  waiters: Waiter[];
}
export interface Variable extends Holds {
  kind: 'variable';
  value: Item | null;
  waiters: Waiter[];
}
export interface Queue extends Holds {
  kind: 'queue';
  maxsize: number;
  items: Item[];
  /** Calls waiting for an item (get) and for room (put, with its item). */
  getters: Waiter[];
  putters: Waiter[];
}
export type Primitive = Semaphore | Event | Variable | Queue;

/** The primitives of a scheduler, by kind and name (`kind\u0000name`). */
export type Primitives = Map<string, Primitive>;
