/**
 * A Future names a result that lives on a worker. It is awaitable (`await f`
 * fetches the value), reports its status, and can be cancelled. Futures for
 * one key share a reference count in their client: when the last is released
 * (explicitly, or by garbage collection), the cluster may drop the result.
 */
import { CancelledError } from '../errors.ts';

export type FutureStatus = 'pending' | 'finished' | 'error' | 'cancelled' | 'lost';

/** What a Future needs from its client. */
export interface FutureHost {
  keyStatus(key: string): FutureStatus;
  waitKey(key: string): Promise<void>;
  gatherOne(key: string): Promise<unknown>;
  retain(key: string): void;
  releaseKey(key: string): void;
  cancelKeys(keys: string[]): Promise<void>;
}

const registry = new FinalizationRegistry<{ host: FutureHost; key: string }>((held) => held.host.releaseKey(held.key));

export class Future<T = unknown> implements PromiseLike<T> {
  private released = false;

  constructor(
    readonly key: string,
    private readonly host: FutureHost,
  ) {
    host.retain(key);
    registry.register(this, { host, key }, this);
  }

  get status(): FutureStatus {
    return this.released ? 'cancelled' : this.host.keyStatus(this.key);
  }

  /** Resolves when the task has finished (without fetching its value); rejects with its error. */
  done(): Promise<void> {
    if (this.released) return Promise.reject(new CancelledError(`future ${this.key} was released`));
    return this.host.waitKey(this.key);
  }

  /** Waits for the task and fetches its value from the worker that holds it. */
  async result(): Promise<T> {
    await this.done();
    return (await this.host.gatherOne(this.key)) as T;
  }

  then<R1 = T, R2 = never>(onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null, onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null): Promise<R1 | R2> {
    return this.result().then(onfulfilled, onrejected);
  }

  /** Cancels the task unless other futures still need it; this future rejects with CancelledError. */
  cancel(): Promise<void> {
    return this.host.cancelKeys([this.key]);
  }

  /** Drops this future's hold on the result (idempotent). */
  release(): void {
    if (this.released) return;
    this.released = true;
    registry.unregister(this);
    this.host.releaseKey(this.key);
  }

  toString(): string {
    return `Future(${this.key}, ${this.status})`;
  }
}
