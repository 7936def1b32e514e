/**
 * One attempt of one step run through a StepHandler, from its launch to its
 * termination: what the step-delegating loop (executor.ts) does for each of
 * its steps, and what a queue worker does for a step it starts in a
 * container or a Kubernetes Job (queue/launch.ts).
 *
 * It launches the step, expects it at the coordinator, passes its events on
 * (none after its end), checks its health every interval once launched, and
 * at once, then every 200 ms for 2 s, when its connection closes before its
 * end. A step that is unhealthy, lost, failed to launch or ended without a
 * result is failed with the reason. Whatever the end, the handler's
 * terminate is called exactly once.
 */
import type { RunEvent } from '../events.ts';
import type { PlannedStep } from '../plan.ts';
import { packStepArgs, STEP_ARGS_ENV, type StepSpec } from '../step/spec.ts';
import type { StepChannel, StepCoordinator } from './coordinator.ts';
import { StepHealthError, type StepHandler, type StepHandlerContext, type StepHealth } from './handler.ts';

/** How long a step whose connection closed early may stay healthy before it counts as lost. */
const LOST_CHECKS = 10;
const LOST_CHECK_MS = 200;

export interface AttemptParams {
  handler: StepHandler;
  coordinator: StepCoordinator;
  step: PlannedStep;
  spec: StepSpec;
  signal: AbortSignal;
  /** Steps of the run not started yet (a hint for the handler). */
  waiting: number;
  /** Started ahead: its inputs do not exist yet; it gets them after `go()`. */
  early: boolean;
  healthCheckMs: number;
  /** Its inputs, msgpack each, when it connects. */
  inputs(): Uint8Array[];
  log(message: string, data?: Record<string, unknown>): void;
}

/** What the attempt tells its owner. Called in order; nothing after `released`. */
export interface AttemptOwner {
  /** The step's events, none after its end; a second STEP_START (taken over by another process) is logged instead. */
  events(a: DelegatedAttempt, evs: RunEvent[]): void;
  /** It ended without reporting its end (unhealthy, lost, not launched, no result): at most once. */
  failed(a: DelegatedAttempt, err: StepHealthError): void;
  /** It is over and its slot is free; `termination` settles once the handler cleaned up after it. */
  released(a: DelegatedAttempt, termination: Promise<void>): void;
}

export class DelegatedAttempt {
  readonly ctx: StepHandlerContext & { finished: boolean };
  readonly step: PlannedStep;
  readonly attempt: number;
  early: boolean;
  started = false;
  /** Its last event (success, failure, retry) is in, or it was failed or stopped. */
  ended = false;
  private launched = false;
  private isReleased = false;
  private lost: string | null = null;
  private lostChecks = 0;
  private checking = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly p: AttemptParams,
    private readonly owner: AttemptOwner,
  ) {
    const { coordinator, step, spec } = p;
    this.step = step;
    this.attempt = spec.attempt;
    this.early = p.early;
    const token = coordinator.token(step.key, spec.attempt);
    const log = (message: string, data?: Record<string, unknown>): void => p.log(message, { step: step.key, attempt: spec.attempt, ...data });
    this.ctx = {
      runId: spec.runId,
      step,
      stepKey: step.key,
      attempt: spec.attempt,
      spec,
      token,
      signal: p.signal,
      waiting: p.waiting,
      finished: false,
      weftStep: async (o: { module?: string } = {}) => ({
        args: ['step'],
        env: {
          // msgpackr's native string decoder only pays off on large messages; loading it costs every step's start about 15 ms.
          MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true',
          [STEP_ARGS_ENV]: packStepArgs({ spec: { ...spec, module: o.module ?? spec.module }, coordinator: await coordinator.url(), token }),
        },
      }),
      attach: (channel: StepChannel) => coordinator.attach(channel, step.key, spec.attempt),
      log,
    };
  }

  /** Expects it at the coordinator and launches it. */
  start(): void {
    const { coordinator, step, spec, handler } = this.p;
    coordinator.expect(
      step.key,
      spec.attempt,
      {
        inputs: this.p.inputs,
        connected: () => {},
        events: (evs) => this.onEvents(evs),
        done: () => {
          if (!this.ended) this.fail(new StepHealthError(`step ${step.key} ended without reporting a result`));
          else this.release(true);
        },
        lost: (why) => {
          if (this.ended) return this.release(true);
          this.lost = why;
          if (this.launched && !this.checking) this.schedule(0);
        },
      },
      !this.early,
    );
    call(() => handler.launch(this.ctx)).then(
      () => {
        this.launched = true;
        if (!this.isReleased) this.schedule(this.lost !== null ? 0 : this.p.healthCheckMs);
      },
      (launchError: unknown) => {
        const err = launchError instanceof Error ? launchError : new Error(String(launchError));
        this.fail(Object.assign(new StepHealthError(`step ${step.key} could not be launched by the ${handler.name} handler: ${err.message}`), { stack: err.stack }));
        this.release(false);
      },
    );
  }

  /** Its inputs exist now (it was started ahead). */
  go(): void {
    this.early = false;
    this.p.coordinator.go(this.step.key, this.attempt);
  }

  /** Tells the step to stop (cancellation): it ends on its own, or `stop()` ends it. */
  cancel(): void {
    this.p.coordinator.cancel(this.step.key, this.attempt);
  }

  /** Ends it now, unseen: no event, no failure. */
  stop(): void {
    this.ended = true;
    this.release(false);
  }

  private onEvents(evs: RunEvent[]): void {
    const out: RunEvent[] = [];
    for (const ev of evs) {
      if (this.ended) break;
      if (ev.type === 'STEP_START' && this.started) {
        // Run again by another process (a queue worker took it over from one that died): said once, not as a second start.
        this.ctx.log(`step ${this.step.key} started again in process ${ev.pid ?? '?'}: the process running it was lost`);
        continue;
      }
      if (ev.type === 'STEP_START') this.started = true;
      if (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_UP_FOR_RETRY') this.ended = true;
      out.push(ev);
    }
    if (out.length > 0) this.owner.events(this, out);
  }

  private fail(err: StepHealthError): void {
    if (this.ended) return;
    this.ended = true;
    this.owner.failed(this, err);
    this.release(false);
  }

  /** The attempt is over: the handler cleans up after it. `finished`: it reported its end and is leaving on its own. */
  private release(finished: boolean): void {
    if (this.isReleased) return;
    this.isReleased = true;
    this.ended = true;
    clearTimeout(this.timer);
    this.p.coordinator.forget(this.step.key, this.attempt);
    this.ctx.finished = finished;
    const termination = call(() => this.p.handler.terminate(this.ctx)).catch((err: unknown) => this.ctx.log(`could not clean up after step ${this.step.key}: ${(err as Error).message}`));
    this.owner.released(this, termination);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), ms);
  }

  private async check(): Promise<void> {
    if (this.ended) return;
    this.checking = true;
    let health: StepHealth;
    try {
      health = await call(() => this.p.handler.checkHealth(this.ctx));
    } catch (err) {
      this.ctx.log(`the health check of step ${this.step.key} failed: ${(err as Error).message}`);
      health = { healthy: true };
    } finally {
      this.checking = false;
    }
    if (this.ended) return;
    if (!health.healthy) return this.fail(new StepHealthError(health.reason));
    if (this.lost === null) return this.schedule(this.p.healthCheckMs);
    if (++this.lostChecks >= LOST_CHECKS) return this.fail(new StepHealthError(`step ${this.step.key} lost its connection to the run's coordinator (${this.lost}) and did not report its end`));
    this.schedule(LOST_CHECK_MS);
  }
}

/** Calls a handler method: a synchronous throw becomes a rejection, as from an async method. */
function call<T>(f: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve) => resolve(f()));
}
