/**
 * StepHandler: what an executor that runs each step in a process of its own
 * (a forked process, a container, a Kubernetes Job) writes. The control
 * loop (executor.ts) does everything else: which steps are ready, limits,
 * priorities, retries, health checks, cancellation, the coordinator the
 * steps report to. Dagster's `StepHandler` under its docker and k8s
 * executors is the model. A stable, documented API (docs/executors.md).
 */
import { WeftError } from '../../errors.ts';
import type { LoadedOutput } from '../executor.ts';
import type { PlannedStep } from '../plan.ts';
import type { StepSpec } from '../step/spec.ts';
import type { StepChannel } from './coordinator.ts';

/** A step's process is gone, or never reported its end: the handler's reason. */
export class StepHealthError extends WeftError {
  override name = 'StepHealthError';
}

export type StepHealth = { healthy: true } | { healthy: false; reason: string };

/** One attempt of one step, as a handler sees it. The same object reaches launch, checkHealth and terminate. */
export interface StepHandlerContext {
  readonly runId: string;
  readonly step: PlannedStep;
  readonly stepKey: string;
  /** 0 for the first attempt. */
  readonly attempt: number;
  /** What the step runs: code location, job, step, attempt, op config. */
  readonly spec: StepSpec;
  /**
   * The `weft step` command (arguments after `weft`) and environment that run
   * this attempt and connect it to the run's coordinator over WebSocket.
   * `module`: where the step finds the code location, when not at the same
   * path as here (an image that keeps its code in /app).
   */
  weftStep(opts?: { module?: string }): Promise<{ args: string[]; env: Record<string, string> }>;
  /** The coordinator's token of this attempt, for a handler that passes the spec its own way. */
  readonly token: string;
  /**
   * For a handler with a private channel to its step (the fork handler's
   * IPC): bound to this attempt at once (no hello, no token), then served
   * like a WebSocket. Attach it before the step can send anything.
   */
  attach(channel: StepChannel): void;
  /** Aborted when the run is cancelled. */
  readonly signal: AbortSignal;
  /** Steps of the run not started yet: a hint for handlers that prepare capacity ahead. */
  readonly waiting: number;
  /** true once the step reported its end (in terminate: it is exiting on its own; clean up after it). */
  readonly finished: boolean;
  /** An ENGINE_EVENT of the run about this step. */
  log(message: string, data?: Record<string, unknown>): void;
}

/** What the run tells a handler before any step: the whole plan. */
export interface StepRunContext {
  readonly runId: string;
  readonly steps: readonly PlannedStep[];
  /** Outputs of earlier runs that a re-execution's steps take (a handler whose steps read inputs their own way puts them there). */
  readonly loadedOutputs: readonly LoadedOutput[];
  readonly signal: AbortSignal;
  log(message: string, data?: Record<string, unknown>): void;
}

export interface StepHandler {
  readonly name: string;
  /**
   * true: the handler's steps get their inputs their own way (the queue
   * handler's read upstream outputs from Redis), so the coordinator sends
   * them none and this process never encodes them.
   */
  readonly ownInputs?: boolean;
  /** Optional: checks before any step is launched (an image that does not exist); throwing fails the run at once. */
  prepare?(run: StepRunContext): Promise<void>;
  /** Starts the step: resolves once it is on its way (its events come through the coordinator). */
  launch(ctx: StepHandlerContext): Promise<void>;
  /**
   * Whether the step's process, container or pod is still there: called every
   * few seconds while it runs, and at once when its connection closes before
   * it ended. Unhealthy fails the step with the reason (retried per its policy).
   */
  checkHealth(ctx: StepHandlerContext): Promise<StepHealth>;
  /**
   * Called once for every launched attempt when it is over, whatever the
   * reason: stops it if it still runs (`ctx.finished` false: cancelled,
   * unhealthy, failed to launch) and frees what it holds. Nothing of the
   * step may be left afterwards.
   */
  terminate(ctx: StepHandlerContext): Promise<void>;
  /** Optional: once at the end of the run, after every terminate. */
  close?(): Promise<void>;
}
