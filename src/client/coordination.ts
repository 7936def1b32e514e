/**
 * Coordination primitives shared by clients and tasks, held by the
 * scheduler (scheduler/coordination.ts), as Dask's: Semaphore, Lock, Event,
 * Variable and Queue, each by name. In a task they use the task's own
 * client (taskContext().client()); in a program, pass `{ client }`.
 *
 *   const sem = new Semaphore({ name: 'db', maxLeases: 4 });
 *   if (await sem.acquire({ timeout: 10 })) {   // seconds; false once timed out
 *     try { ... } finally { await sem.release(); }
 *   }
 *
 * Timeouts are in seconds, as Dask's; without one a call waits as long as
 * it takes. Values (Variable, Queue) travel as msgpack, at most 1 MiB each;
 * a Future goes as its key, and its result stays on the cluster while the
 * variable or queue holds it: the way to share large data.
 */
import { randomUUID } from 'node:crypto';
import { decode, encodeOwned } from '../protocol/codec.ts';
import { MAX_SYNC_VALUE_BYTES } from '../protocol/messages.ts';
import { SyncTimeoutError, WeftError } from '../errors.ts';
import { taskContext } from '../worker/task-context.ts';
import type { Client, SyncCall } from './client.ts';
import { Future } from './future.ts';

export interface SyncOptions {
  name: string;
  /** The client to call through; in a task, the task's own by default. */
  client?: Client;
}

/** Seconds to wait at most; absent: as long as it takes. */
export interface SyncWaitOptions {
  timeout?: number;
}

/** The client of these options, or the running task's. */
async function clientOf(o: SyncOptions): Promise<Client> {
  if (o.client) return o.client;
  try {
    return await taskContext().client();
  } catch (err) {
    throw new WeftError(`no client for ${o.name}: outside a task, pass { client } (${(err as Error).message})`);
  }
}

abstract class Primitive {
  readonly name: string;
  private clientP: Promise<Client> | null = null;
  constructor(
    private readonly kind: SyncCall['kind'],
    private readonly opts: SyncOptions,
  ) {
    this.name = opts.name;
  }

  protected client(): Promise<Client> {
    this.clientP ??= clientOf(this.opts);
    return this.clientP;
  }

  /** A reply's value: decoded, or a future of this client for the key it names (the scheduler made it wanted). */
  protected async valueOf(r: { value?: Uint8Array | undefined; key?: string | undefined }): Promise<unknown> {
    if (r.key !== undefined) return (await this.client()).futureOf(r.key);
    return r.value === undefined ? undefined : decode(r.value);
  }

  protected async call(action: SyncCall['action'], extra: Omit<SyncCall, 'kind' | 'name' | 'action'> = {}): Promise<{ ok: boolean; value?: Uint8Array | undefined; key?: string | undefined; size?: number | undefined }> {
    return (await this.client()).sync({ kind: this.kind, name: this.name, action, ...extra });
  }
}

const waitFor = (o: SyncWaitOptions): { timeout?: number } => (o.timeout === undefined ? {} : { timeout: o.timeout });

/** What a set or put sends: a future's key, or the value as msgpack. */
function itemOf(what: string, value: unknown): { key: string } | { value: Uint8Array } {
  return value instanceof Future ? { key: value.key } : { value: packValue(what, value) };
}

/** A value as msgpack, refused here (not by the scheduler, which would drop the connection) when too large. */
function packValue(what: string, value: unknown): Uint8Array {
  const bytes = encodeOwned(value);
  if (bytes.length > MAX_SYNC_VALUE_BYTES) throw new WeftError(`${what}: the value is ${bytes.length} bytes encoded; at most ${MAX_SYNC_VALUE_BYTES} (keep large data in task results, and share their futures' keys)`);
  return bytes;
}

/**
 * At most `maxLeases` holders at once, across clients and tasks. Each lease
 * is refreshed by its holder while it lives, and released if its client
 * disconnects (its worker died) or stops refreshing for `leaseTimeout`
 * seconds (default 30).
 */
export class Semaphore extends Primitive {
  readonly maxLeases: number;
  readonly leaseTimeout: number;
  private readonly held: string[] = [];
  private refresher: NodeJS.Timeout | null = null;

  constructor(opts: SyncOptions & { maxLeases?: number; leaseTimeout?: number }) {
    super('semaphore', opts);
    this.maxLeases = opts.maxLeases ?? 1;
    this.leaseTimeout = opts.leaseTimeout ?? 30;
  }

  /** Takes a lease; false if none came free within `timeout` seconds. */
  async acquire(o: SyncWaitOptions = {}): Promise<boolean> {
    const lease = randomUUID();
    const r = await this.call('acquire', { lease, maxLeases: this.maxLeases, leaseTimeout: this.leaseTimeout, ...waitFor(o) });
    if (!r.ok) return false;
    this.held.push(lease);
    await this.refreshWhileHeld();
    return true;
  }

  /** Gives back a lease this object took (the oldest). */
  async release(): Promise<void> {
    const lease = this.held.shift();
    if (lease === undefined) throw new WeftError(`release() of ${this.name}: this object holds no lease`);
    if (this.held.length === 0 && this.refresher) {
      clearInterval(this.refresher);
      this.refresher = null;
    }
    await this.call('release', { lease });
  }

  /** Leases held now, by anyone. */
  async count(): Promise<number> {
    return (await this.call('count')).size ?? 0;
  }

  private async refreshWhileHeld(): Promise<void> {
    if (this.refresher) return;
    const c = await this.client();
    // Three times per lease timeout: one lost refresh never lets a live holder's lease lapse.
    this.refresher = setInterval(() => c.syncNotify({ kind: 'semaphore', name: this.name, action: 'refresh', leases: [...this.held] }), (this.leaseTimeout * 1000) / 3);
    this.refresher.unref();
  }
}

/** One holder at a time: a Semaphore of one lease (its own names: a Lock and a Semaphore may share one). */
export class Lock {
  private readonly sem: Semaphore;
  readonly name: string;

  constructor(opts: SyncOptions & { leaseTimeout?: number }) {
    this.name = opts.name;
    this.sem = new Semaphore({ ...opts, name: `lock:${opts.name}`, maxLeases: 1 });
  }

  acquire(o: SyncWaitOptions = {}): Promise<boolean> {
    return this.sem.acquire(o);
  }

  release(): Promise<void> {
    return this.sem.release();
  }

  /** Whether someone holds it now. */
  async locked(): Promise<boolean> {
    return (await this.sem.count()) > 0;
  }
}

/** A flag clients and tasks wait on: `wait` returns once it is set. */
export class Event extends Primitive {
  constructor(opts: SyncOptions) {
    super('event', opts);
  }

  async set(): Promise<void> {
    await this.call('set');
  }

  async clear(): Promise<void> {
    await this.call('clear');
  }

  /** True once set; false if `timeout` seconds passed first. */
  async wait(o: SyncWaitOptions = {}): Promise<boolean> {
    return (await this.call('wait', waitFor(o))).ok;
  }

  async isSet(): Promise<boolean> {
    return (await this.call('is-set')).ok;
  }
}

/** One value, shared: `get` waits until there is one. */
export class Variable<T = unknown> extends Primitive {
  constructor(opts: SyncOptions) {
    super('variable', opts);
  }

  /** Sets its value: anything msgpack encodes, or a Future (its result then stays on the cluster while the variable holds it). */
  async set(value: T): Promise<void> {
    await this.call('set', itemOf(`variable ${this.name}`, value));
  }

  /** Its value (a Future, if a future was set); SyncTimeoutError if none was set within `timeout` seconds. */
  async get(o: SyncWaitOptions = {}): Promise<T> {
    const r = await this.call('get', waitFor(o));
    if (!r.ok) throw new SyncTimeoutError(`variable ${this.name} had no value within ${o.timeout} s`);
    return (await this.valueOf(r)) as T;
  }

  async delete(): Promise<void> {
    await this.call('delete');
  }
}

/** A first-in first-out queue of values, of at most `maxsize` (0: no limit but the scheduler's, 100,000). */
export class Queue<T = unknown> extends Primitive {
  readonly maxsize: number;

  constructor(opts: SyncOptions & { maxsize?: number }) {
    super('queue', opts);
    this.maxsize = opts.maxsize ?? 0;
  }

  /** Adds a value (or a Future, kept on the cluster while queued); SyncTimeoutError if the queue stayed full for `timeout` seconds. */
  async put(value: T, o: SyncWaitOptions = {}): Promise<void> {
    const r = await this.call('put', { ...itemOf(`queue ${this.name}`, value), maxsize: this.maxsize, ...waitFor(o) });
    if (!r.ok) throw new SyncTimeoutError(`queue ${this.name} stayed full for ${o.timeout} s`);
  }

  /** The oldest value (a Future, if a future was put); SyncTimeoutError if none came within `timeout` seconds. */
  async get(o: SyncWaitOptions = {}): Promise<T> {
    const r = await this.call('get', { maxsize: this.maxsize, ...waitFor(o) });
    if (!r.ok) throw new SyncTimeoutError(`queue ${this.name} had no value within ${o.timeout} s`);
    return (await this.valueOf(r)) as T;
  }

  /** Values in it now. */
  async qsize(): Promise<number> {
    return (await this.call('qsize', { maxsize: this.maxsize })).size ?? 0;
  }
}
