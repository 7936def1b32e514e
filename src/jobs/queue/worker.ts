/**
 * `weft queue-worker`: a long-lived process that takes steps from named
 * queues (BullMQ on Redis, Celery's role), highest priority first, runs each
 * in this process and reports through Redis: it reads the step's inputs
 * (the outputs of the steps upstream, stored under the run by the workers
 * that made them), stores its outputs there the same way, and sends its
 * events to the run's stream while it runs. The launching process and the
 * workers meet only at Redis.
 *
 * A worker killed in the middle of a step loses its lock: BullMQ gives the
 * step to another worker after the stall interval, at most `maxStalls` times.
 * A step of a run whose launching process is gone (its heartbeat expired) is
 * dropped. A malformed job fails with the reason; the worker goes on.
 * SIGTERM: it takes no new step, finishes what it runs, and exits. A step
 * whose executor says `launch` runs in a container or a Kubernetes Job the
 * worker starts and supervises (launch.ts).
 */
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { serializeError } from '../../errors.ts';
import { decode, encode } from '../../protocol/codec.ts';
import type { Logger } from '../../util/log.ts';
import { event, type RunEvent } from '../events.ts';
import { loadDefinitions, moduleUrl, type CodeLocationJobs } from '../location.ts';
import type { FromStep } from '../step/messages.ts';
import { Batcher, runStepSession } from '../step/session.ts';
import { queuedStepSchema, type LaunchConfig, type QueuedStepParsed } from './job-data.ts';
import type { PlannedStep } from '../plan.ts';
import { rebuildPlan } from '../step/rebuild.ts';
import type { StepSpec } from '../step/spec.ts';
import { attemptName, cancelChannel, cancelKey, DEFAULT_PREFIX, inputKey, MAX_OUTPUT_BYTES, outputKey, RUN_TTL_SECONDS, runKey } from './keys.ts';
import { connectRedis, duplicateRedis } from './redis.ts';
import { runLaunched } from './launch.ts';
import { launchRefusal, moduleRefusal, type QueuePolicy } from './policy.ts';
import { refreshUserModule, userCodeGeneration } from '../../util/user-modules.ts';
import { optionalPackage } from '../../util/optional.ts';

export interface QueueWorkerOptions {
  redis: string;
  queues: string[];
  concurrency: number;
  name: string;
  prefix?: string;
  /** Milliseconds a worker holds a step's lock between renewals (BullMQ lockDuration). */
  lockMs?: number;
  /** Milliseconds between checks for steps whose worker died (BullMQ stalledInterval). */
  stallIntervalMs?: number;
  /** Times a step may lose its worker before it fails (BullMQ maxStalledCount). */
  maxStalls?: number;
  /** What a job may make this worker do (policy.ts): code root (default: the working directory), mounts, trust. */
  policy?: Partial<QueuePolicy>;
  log: Logger;
}

export class QueueWorker {
  private constructor(
    private readonly workers: Worker[],
    /** BullMQ does not close connections it was given. */
    private readonly connections: Redis[],
  ) {}

  static async start(opts: QueueWorkerOptions): Promise<QueueWorker> {
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    const policy: QueuePolicy = { codeRoot: opts.policy?.codeRoot ?? process.cwd(), mounts: opts.policy?.mounts ?? [], trustLaunchOptions: opts.policy?.trustLaunchOptions ?? false };
    const redis = await connectRedis(opts.redis);
    const subscriber = await connectRedis(opts.redis);
    const running = new Map<string, AbortController>();
    await subscriber.subscribe(cancelChannel(prefix));
    subscriber.on('message', (_channel: string, message: string) => running.get(message)?.abort());
    const { Worker, UnrecoverableError } = await optionalPackage(['bullmq', 'ioredis'], 'weft queue-worker', () => import('bullmq'));
    const definitions = new Map<string, Promise<CodeLocationJobs | Error>>();
    let generation = userCodeGeneration();
    const codeLocation = (module: string): Promise<CodeLocationJobs | Error> => {
      refreshUserModule(moduleUrl(module));
      if (generation !== userCodeGeneration()) {
        // A code location changed on disk (followed by the CLI, see user-modules.ts): loaded again.
        generation = userCodeGeneration();
        definitions.clear();
      }
      let d = definitions.get(module);
      if (!d) {
        d = loadDefinitions(module).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
        definitions.set(module, d);
      }
      return d;
    };

    const processStep = async (job: Job): Promise<void> => {
      const parsed = queuedStepSchema().safeParse(job.data);
      if (!parsed.success) throw new UnrecoverableError(`job ${job.id} on queue ${job.queueName} is not a weft step: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(data)'}: ${i.message}`).join('; ')}`);
      const spec = parsed.data.spec as StepSpec;
      const where = `step ${spec.stepKey} (attempt ${spec.attempt}) of run ${spec.runId}`;
      // Before anything of it is imported or started: a job is held to this worker's policy.
      const refused = moduleRefusal(spec.module, policy) ?? (parsed.data.launch ? launchRefusal(parsed.data.launch as LaunchConfig, policy) : null);
      if (refused !== null) throw new UnrecoverableError(`${where} was refused: ${refused}`);
      if ((await redis.exists(runKey(prefix, spec.runId, 'alive'))) === 0) throw new UnrecoverableError(`${where} was dropped: the process that launched the run is gone`);
      const defs = await codeLocation(spec.module);
      const { inputs, missing, step } = defs instanceof Error ? { inputs: [], missing: null, step: null } : await readInputs(redis, prefix, defs, spec, parsed.data.sources);
      const stream = runKey(prefix, spec.runId, 'events');
      const name = attemptName(spec.stepKey, spec.attempt);
      // Every event in order on one connection; the last write waits for those before it.
      let writes: Promise<unknown> = Promise.resolve();
      const report = (msg: FromStep): void => {
        writes = writes.then(() => redis.multi().xadd(stream, '*', 'a', name, 'm', encode(msg)).expire(stream, RUN_TTL_SECONDS).exec());
      };
      const controller = new AbortController();
      running.set(`${spec.runId}\n${name}`, controller);
      let tooLarge = false;
      const events = new Batcher<RunEvent>((evs) => report({ t: 'events', evs }));
      const started = Date.now();
      const about = { run: spec.runId, job: spec.jobName, step: spec.stepKey, attempt: spec.attempt, queue: job.queueName };
      opts.log.info(about, `step ${spec.stepKey} started`);
      let outcome: RunEvent | null = null;
      const emit = (ev: RunEvent): void => {
        if (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_UP_FOR_RETRY') outcome = ev;
        if (tooLarge) return;
        if (ev.type === 'STEP_OUTPUT' && ev.bytes) {
          if (ev.bytes.length > MAX_OUTPUT_BYTES) {
            tooLarge = true;
            const error = serializeError(new RangeError(`output ${ev.output} of step ${spec.stepKey} is ${ev.bytes.length} bytes as msgpack; the queue executor takes outputs of at most ${MAX_OUTPUT_BYTES} bytes`));
            events.push(event('STEP_FAILURE', spec.runId, spec.stepKey, `step ${spec.stepKey} failed: ${error.message}`, { attempt: spec.attempt, pid: process.pid, error }));
            return;
          }
          // Stored before the event goes out: the steps downstream start only after it.
          const bytes = ev.bytes;
          events.flush();
          writes = writes.then(() => redis.set(outputKey(prefix, spec.runId, spec.stepKey, ev.output ?? 'result'), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 'EX', RUN_TTL_SECONDS));
        }
        events.push(ev);
      };
      try {
        const launch = parsed.data.launch;
        // Cancelled as this worker took it, before it listened for cancels (keys.ts): it is not started.
        if ((await redis.exists(cancelKey(prefix, spec.runId, name))) === 1) controller.abort();
        else if (launch && step) {
          const log = (message: string, data?: Record<string, unknown>): void => opts.log.info({ run: spec.runId, ...data }, message);
          await runLaunched({ launch, spec, step, inputs, signal: controller.signal, emit, log });
        } else await runStepSession(missing ?? defs, spec, inputs, controller.signal, emit);
        events.flush();
        report({ t: 'done' });
        await writes;
      } finally {
        running.delete(`${spec.runId}\n${name}`);
        logOutcome(opts.log, about, outcome, Date.now() - started);
      }
    };

    const connections = opts.queues.map(() => duplicateRedis(redis, { maxRetriesPerRequest: null }));
    const workers = opts.queues.map(
      (queue, i) =>
        new Worker(queue, processStep, {
          connection: connections[i] as Redis,
          prefix,
          concurrency: opts.concurrency,
          name: opts.name,
          lockDuration: opts.lockMs ?? 10_000,
          stalledInterval: opts.stallIntervalMs ?? 5_000,
          maxStalledCount: opts.maxStalls ?? 2,
        }),
    );
    for (const w of workers) {
      w.on('failed', (job, err) => opts.log.warn({ job: job?.id, err: err.message }, 'step job failed'));
      w.on('error', (err) => opts.log.error({ err: err.message }, 'queue worker error'));
    }
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    return new QueueWorker(workers, [redis, subscriber, ...connections]);
  }

  /** Takes no new step, finishes those it runs, then disconnects. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    for (const c of this.connections) c.disconnect();
  }
}

/**
 * A step's inputs, msgpack each, in the op's order: upstream outputs and job
 * inputs from the run's keys, constants from the plan. `missing` says which
 * one is not there (the run expired, or Redis lost it).
 */
async function readInputs(redis: Redis, prefix: string, defs: CodeLocationJobs, spec: StepSpec, sources: QueuedStepParsed['sources']): Promise<{ inputs: Uint8Array[]; missing: Error | null; step: PlannedStep | null }> {
  let step: PlannedStep;
  try {
    step = rebuildPlan(defs, spec).step(spec.stepKey);
  } catch (err) {
    return { inputs: [], missing: err instanceof Error ? err : new Error(String(err)), step: null };
  }
  // What each input reads: a copy's and a collecting step's sources come with the job (job-data.ts).
  type Read = { value: unknown } | { keys: { key: string; what: string }[]; list: boolean };
  const reads: Read[] = step.node.inputs.map((src, i): Read => {
    const given = sources?.[i];
    if (given) {
      const refs = 'list' in given ? given.list : [given];
      return { keys: refs.map((r) => ({ key: outputKey(prefix, spec.runId, r.step, r.output), what: `output ${r.output} of step ${r.step}` })), list: 'list' in given };
    }
    if (src.kind === 'value') return { value: src.value };
    if (src.kind === 'step') return { keys: [{ key: outputKey(prefix, spec.runId, src.stepKey, src.output), what: `output ${src.output} of step ${src.stepKey}` }], list: false };
    if (src.kind === 'job-input') return { keys: [{ key: inputKey(prefix, spec.runId, src.name), what: `job input ${src.name}` }], list: false };
    return { keys: [{ key: '', what: `a ${src.kind} input the launcher did not resolve` }], list: false };
  });
  const wanted = reads.flatMap((r) => ('keys' in r ? r.keys.map((k) => k.key).filter((k) => k !== '') : []));
  // One round trip for all of them (a fan-in takes hundreds).
  const found = wanted.length > 0 ? await redis.mgetBuffer(...wanted) : [];
  const inputs: Uint8Array[] = [];
  let j = 0;
  for (const [i, r] of reads.entries()) {
    if ('value' in r) {
      inputs.push(encode(r.value));
      continue;
    }
    const parts: Uint8Array[] = [];
    for (const k of r.keys) {
      const bytes = k.key === '' ? null : found[j++];
      if (!bytes) return { step: null, inputs: [], missing: new Error(`input ${i} of step ${spec.stepKey} (${k.what}) is not in Redis${k.key ? ` at ${k.key}` : ''}: the run's keys expired, or Redis lost them`) };
      parts.push(bytes);
    }
    // A collected list: one value made of the outputs, in order.
    inputs.push(r.list ? encode(parts.map((p) => decode(p))) : (parts[0] as Uint8Array));
  }
  return { inputs, missing: null, step };
}

/** A step's end in the worker's log: at info when it succeeded, at warn otherwise. */
function logOutcome(log: Logger, about: Record<string, unknown>, ev: RunEvent | null, ms: number): void {
  const step = about['step'] as string;
  const data = { ...about, ms };
  if (ev?.type === 'STEP_SUCCESS') log.info(data, `step ${step} succeeded in ${ms} ms`);
  else if (ev?.type === 'STEP_UP_FOR_RETRY') log.warn({ ...data, error: ev.error?.message }, `step ${step} failed after ${ms} ms; up for retry`);
  else if (ev?.type === 'STEP_FAILURE') log.warn({ ...data, error: ev.error?.message }, `step ${step} failed after ${ms} ms`);
  else log.warn(data, `step ${step} ended after ${ms} ms without a result (cancelled, or its launcher is gone)`);
}
