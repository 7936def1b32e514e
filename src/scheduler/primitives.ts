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
  value?: Uint8Array;
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
export interface Variable {
  kind: 'variable';
  value: Uint8Array | null;
  waiters: Waiter[];
}
export interface Queue {
  kind: 'queue';
  maxsize: number;
  items: Uint8Array[];
  /** Calls waiting for an item (get) and for room (put, with `value`). */
  getters: Waiter[];
  putters: Waiter[];
}
export type Primitive = Semaphore | Event | Variable | Queue;

/** The primitives of a scheduler, by kind and name (`kind\u0000name`). */
export type Primitives = Map<string, Primitive>;
