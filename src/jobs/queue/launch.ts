/**
 * A queued step that the queue worker starts in a container or a Kubernetes
 * Job of its own (the queue executor's `launch`; Dagster's
 * celery_docker_executor and celery_k8s_job_executor). The worker is the
 * step's launching process: the docker or k8s handler starts it, it
 * connects back to a coordinator in the worker, and one DelegatedAttempt
 * supervises it as the step-delegating loop would (health, lost
 * connection, terminate once). Its events and outputs reach the worker,
 * which relays them to Redis as for a step it runs itself.
 *
 * The worker never calls the handler's `close`: that removes every
 * container or Job of the run, and other workers may be running its other
 * steps.
 */
import type { RunEvent } from '../events.ts';
import type { PlannedStep } from '../plan.ts';
import type { StepSpec } from '../step/spec.ts';
import { failureOrRetry } from '../step-runner.ts';
import type { CoordinatorConfig } from '../delegating/config.ts';
import { StepCoordinator } from '../delegating/coordinator.ts';
import { DelegatedAttempt } from '../delegating/attempt.ts';
import type { StepHandler } from '../delegating/handler.ts';
import type { LaunchConfig } from './job-data.ts';

/** Health checks of a launched step, as the executors' default. */
const HEALTH_CHECK_MS = 5000;

export interface LaunchedStep {
  launch: LaunchConfig;
  spec: StepSpec;
  step: PlannedStep;
  /** Its inputs, msgpack each, read from Redis. */
  inputs: Uint8Array[];
  signal: AbortSignal;
  emit(ev: RunEvent): void;
  log(message: string, data?: Record<string, unknown>): void;
}

/** Runs one attempt in its container or Job; resolves once it is over and cleaned up after. */
export async function runLaunched(l: LaunchedStep): Promise<void> {
  const { spec, step, signal } = l;
  const fail = (err: unknown, retryable = true): void => l.emit(failureOrRetry({ runId: spec.runId, step, inputs: [], attempt: spec.attempt, retries: spec.retries, signal }, err, retryable));
  const { handler, coordinatorConfig } = await handlerFor(l.launch);
  const coordinator = new StepCoordinator(spec.runId, coordinatorConfig, (m) => l.log(m));
  try {
    try {
      await handler.prepare?.({ runId: spec.runId, steps: [step], loadedOutputs: [], signal, log: l.log });
    } catch (err) {
      // An image that is not there, a config the cluster refuses: no other attempt would do better.
      fail(err, false);
      return;
    }
    let released!: (termination: Promise<void>) => void;
    // Settles with the termination it is given: once the handler cleaned up after the step.
    const over = new Promise<void>((resolve) => (released = resolve));
    const attempt = new DelegatedAttempt(
      { handler, coordinator, step, spec, signal, waiting: 0, early: false, healthCheckMs: HEALTH_CHECK_MS, inputs: () => l.inputs, log: l.log },
      {
        events: (_a, evs) => {
          for (const ev of evs) l.emit(ev);
        },
        failed: (_a, err) => fail(err),
        released: (_a, termination) => released(termination),
      },
    );
    // Cancelled (the run was, or this worker is asked to stop it): the container or Job is stopped now.
    const onAbort = (): void => attempt.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    attempt.start();
    if (signal.aborted) attempt.stop();
    try {
      await over;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  } finally {
    await coordinator.close();
  }
}

async function handlerFor(launch: LaunchConfig): Promise<{ handler: StepHandler; coordinatorConfig: CoordinatorConfig }> {
  if ('docker' in launch) {
    const { dockerHandler } = await import('../handlers/docker.ts');
    return { handler: dockerHandler(launch.docker), coordinatorConfig: launch.docker.coordinator };
  }
  const { k8sHandler } = await import('../handlers/k8s.ts');
  return { handler: k8sHandler(launch.k8s), coordinatorConfig: launch.k8s.coordinator };
}
