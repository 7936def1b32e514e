/**
 * The queue handler, under the queue executor: each step attempt becomes a
 * BullMQ job on its queue (op tag `weft/queue`, else the executor's), with
 * the step's and the run's priority; long-lived queue workers take it
 * (queue/worker.ts). The handler and the workers meet only at Redis: a step
 * reads its inputs there (its upstream steps' outputs, stored under the run
 * by the workers that made them; the run's job inputs, stored here), its
 * events come back on the run's stream while it runs (read here and served
 * to the run's coordinator as the attempt's channel), a cancel goes out on a
 * channel.
 *
 * Health: the job's state (failed, with BullMQ's reason, or gone). A step
 * whose worker died is taken again by another after the stall interval; its
 * second start is reported as such. Terminate removes a waiting job, or
 * stops a running one.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { decode, encode } from '../../protocol/codec.ts';
import type { StepChannel } from '../delegating/coordinator.ts';
import type { StepHandler, StepHandlerContext, StepHealth } from '../delegating/handler.ts';
import type { ToStep } from '../step/messages.ts';
import type { QueueConfig } from '../queue/config.ts';
import type { QueuedSource, QueuedStep } from '../queue/job-data.ts';
import type { PlannedStep } from '../plan.ts';
import { isCopy } from '../dynamic.ts';
import { ALIVE_EVERY_MS, attemptName, QUEUE_TAG, cancelChannel, cancelKey, inputKey, jobId, outputKey, RUN_TTL_SECONDS, runKey } from '../queue/keys.ts';
import { CONNECT_TIMEOUT_MS, connectRedis, duplicateRedis, redact, withTimeout } from '../queue/redis.ts';
import { optionalPackage } from '../../util/optional.ts';
import { liveWorkers } from '../queue/status.ts';

/** When the run says that no worker serves a queue its steps wait on: after the first step is queued, then again while they wait. */
const NO_WORKER_FIRST_MS = 3000;
const NO_WORKER_AGAIN_MS = 30_000;

/** BullMQ runs lower numbers first (1 to 2,097,151); weft's priorities are higher-first around 0. */
function bullPriority(priority: number): number {
  return Math.min(2_097_151, Math.max(1, 1_000_000 - Math.round(priority)));
}

/** Reads the run's event stream and hands each message to the channel of its attempt. */
class RunStream {
  private readonly listeners = new Map<string, (msg: unknown) => void>();
  private stopped = false;
  private lastId = '0-0';
  readonly done: Promise<void>;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly onError: (err: Error) => void,
  ) {
    this.done = this.read();
  }

  listen(attempt: string, fn: ((msg: unknown) => void) | null): void {
    if (fn) this.listeners.set(attempt, fn);
    else this.listeners.delete(attempt);
  }

  stop(): void {
    this.stopped = true;
    this.redis.disconnect();
  }

  private async read(): Promise<void> {
    while (!this.stopped) {
      let res: [Buffer, [Buffer, Buffer[]][]][] | null;
      try {
        res = (await this.redis.xreadBuffer('BLOCK', 1000, 'STREAMS', this.key, this.lastId)) as [Buffer, [Buffer, Buffer[]][]][] | null;
      } catch (err) {
        if (!this.stopped) this.onError(err as Error);
        return;
      }
      for (const [, entries] of res ?? []) {
        for (const [id, fields] of entries) {
          this.lastId = id.toString();
          let attempt = '';
          let payload: Buffer | null = null;
          for (let i = 0; i + 1 < fields.length; i += 2) {
            const f = fields[i]?.toString();
            if (f === 'a') attempt = fields[i + 1]?.toString() ?? '';
            else if (f === 'm') payload = fields[i + 1] ?? null;
          }
          const fn = this.listeners.get(attempt);
          if (!fn || !payload) continue;
          let msg: unknown;
          try {
            msg = decode(payload);
          } catch {
            msg = { t: 'malformed' };
          }
          fn(msg);
        }
      }
    }
  }
}

interface Queued {
  queue: Queue;
  id: string;
  channel: StepChannel;
}

export function queueHandler(config: QueueConfig, runPriority: number, jobInputs: Readonly<Record<string, unknown>>): StepHandler {
  const prefix = config.prefix;
  let redis: Redis | null = null;
  let stream: RunStream | null = null;
  let alive: NodeJS.Timeout | null = null;
  let runId = '';
  const queues = new Map<string, Queue>();
  /** BullMQ does not close connections it was given. */
  const connections: Redis[] = [];
  const queued = new Map<StepHandlerContext, Queued>();
  let log: (message: string) => void = () => {};
  /** Per queue this run uses: the timer of the next look for a worker that serves it. */
  const watches = new Map<string, NodeJS.Timeout>();

  /**
   * Steps waiting on a queue no worker serves would wait without a word:
   * said 3 s after the first step is queued, then every 30 s while one waits.
   */
  const watch = (queue: Queue, ms = NO_WORKER_FIRST_MS): void => {
    if (watches.has(queue.name)) return;
    const timer = setTimeout(() => {
      void (async () => {
        const mine = [...queued.values()].filter((q) => q.queue === queue);
        if (mine.length === 0) return watches.delete(queue.name);
        let waiting = 0;
        for (const q of mine) {
          const state = await (await queue.getJob(q.id))?.getState();
          if (state === 'waiting' || state === 'prioritized') waiting++;
        }
        if (waiting > 0 && (await liveWorkers(queue)).length === 0) {
          log(`no queue worker takes steps from queue ${queue.name} at ${redact(config.redis)} (prefix ${prefix}): ${waiting} step(s) of this run wait. Start one: weft queue-worker --redis URL --queues ${queue.name}`);
        }
        watches.delete(queue.name);
        watch(queue, NO_WORKER_AGAIN_MS);
      })().catch(() => watches.delete(queue.name));
    }, ms);
    timer.unref();
    watches.set(queue.name, timer);
  };
  const client = (): Redis => {
    if (!redis) throw new Error('the queue handler was not prepared for the run');
    return redis;
  };
  const queueFor = async (name: string): Promise<Queue> => {
    let q = queues.get(name);
    if (!q) {
      const { Queue } = await optionalPackage(['bullmq', 'ioredis'], 'the queue executor', () => import('bullmq'));
      const connection = duplicateRedis(client(), { maxRetriesPerRequest: null });
      connections.push(connection);
      q = new Queue(name, { connection, prefix });
      queues.set(name, q);
    }
    return q;
  };

  /** The attempt's channel: its inputs go to Redis, its messages come from the run's stream. */
  const channelFor = (ctx: StepHandlerContext): StepChannel => {
    const name = attemptName(ctx.stepKey, ctx.attempt);
    return {
      // 'start' carries no inputs here (ownInputs): the worker reads them from Redis.
      send: (msg: ToStep) => {
        if (msg.t === 'cancel') void client().publish(cancelChannel(prefix), `${runId}\n${name}`);
      },
      listen: (onMessage) => stream?.listen(name, onMessage),
      close: () => void stream?.listen(name, null),
    };
  };

  return {
    name: 'queue',
    ownInputs: true,

    async prepare(run) {
      runId = run.runId;
      log = run.log;
      redis = await connectRedis(config.redis);
      const aliveKey = runKey(prefix, runId, 'alive');
      const ttl = config.heartbeatSeconds;
      await redis.set(aliveKey, '1', 'EX', ttl);
      // The workers drop the steps of a run whose launcher stops refreshing this (killed, even with -9).
      alive = setInterval(() => void redis?.set(aliveKey, '1', 'EX', ttl).catch(() => {}), Math.min(ALIVE_EVERY_MS, (ttl * 1000) / 3));
      alive.unref();
      // The run's job inputs, and the outputs of earlier runs a re-execution loads, for the steps that take them.
      const inputs = Object.entries(jobInputs);
      if (inputs.length > 0 || run.loadedOutputs.length > 0) {
        const m = redis.multi();
        for (const [k, v] of inputs) m.set(inputKey(prefix, runId, k), encode(v), 'EX', RUN_TTL_SECONDS);
        for (const l of run.loadedOutputs) m.set(outputKey(prefix, runId, l.stepKey, l.output), Buffer.from(l.bytes.buffer, l.bytes.byteOffset, l.bytes.byteLength), 'EX', RUN_TTL_SECONDS);
        await m.exec();
      }
      stream = new RunStream(duplicateRedis(redis), runKey(prefix, runId, 'events'), (err) => run.log(`lost the run's event stream in Redis: ${err.message}`));
    },

    async launch(ctx) {
      const channel = channelFor(ctx);
      ctx.attach(channel);
      const queue = await queueFor(ctx.step.tags[QUEUE_TAG] ?? config.queue);
      const id = jobId(ctx.runId, ctx.stepKey, ctx.attempt);
      const data: QueuedStep = { v: 1, spec: ctx.spec, ...(config.launch ? { launch: config.launch } : {}), ...sourcesOf(ctx.step) };
      await queue.add('step', data, { jobId: id, priority: bullPriority(ctx.step.priority + runPriority), removeOnComplete: { age: 3600 }, removeOnFail: { age: 24 * 3600 } });
      queued.set(ctx, { queue, id, channel });
      watch(queue);
    },

    async checkHealth(ctx): Promise<StepHealth> {
      const q = queued.get(ctx);
      if (!q) return { healthy: true };
      let job: Awaited<ReturnType<Queue['getJob']>>;
      let state: string;
      try {
        // Redis down or gone: said within seconds, never waited on forever.
        job = await withTimeout(q.queue.getJob(q.id), CONNECT_TIMEOUT_MS);
        state = job ? await withTimeout(job.getState(), CONNECT_TIMEOUT_MS) : 'gone';
      } catch (err) {
        return { healthy: false, reason: `cannot reach Redis at ${redact(config.redis)} to follow step ${ctx.stepKey}: ${(err as Error).message}` };
      }
      if (!job) return { healthy: false, reason: `the queue job of step ${ctx.stepKey} is gone from queue ${q.queue.name} (Redis restarted without its data, or something removed it)` };
      if (state === 'failed') return { healthy: false, reason: `a queue worker failed step ${ctx.stepKey}: ${job.failedReason}` };
      return { healthy: true };
    },

    async terminate(ctx) {
      const q = queued.get(ctx);
      queued.delete(ctx);
      if (!q) return;
      q.channel.close('the step is over');
      if (!ctx.finished) {
        const job = await q.queue.getJob(q.id);
        const state = await job?.getState();
        // A waiting step is taken off the queue; removing fails if a worker took it since the look.
        const removed = job && (state === 'waiting' || state === 'prioritized' || state === 'delayed') ? await job.remove().then(() => true, () => false) : false;
        if (!removed) {
          // Running: its worker stops it (its op sees ctx.signal abort). The key tells a worker that took it too
          // late to hear the message (it looks once it listens).
          const attempt = attemptName(ctx.stepKey, ctx.attempt);
          await client().multi().set(cancelKey(prefix, runId, attempt), '1', 'EX', RUN_TTL_SECONDS).publish(cancelChannel(prefix), `${runId}\n${attempt}`).exec();
        }
      }
    },

    async close() {
      if (alive) clearInterval(alive);
      for (const t of watches.values()) clearTimeout(t);
      watches.clear();
      stream?.stop();
      await Promise.all([...queues.values()].map((q) => q.close()));
      for (const c of connections) c.disconnect();
      if (redis) {
        await redis.del(runKey(prefix, runId, 'alive')).catch(() => {});
        redis.disconnect();
      }
    },
  };
}

/** A copy's or a collecting step's inputs, which its worker cannot rebuild from the job (job-data.ts); nothing for other steps. */
function sourcesOf(step: PlannedStep): { sources?: QueuedSource[] } {
  if (!isCopy(step.key) && !step.node.inputs.some((i) => i.kind === 'list')) return {};
  return {
    sources: step.node.inputs.map((i): QueuedSource => {
      if (i.kind === 'step') return { step: i.stepKey, output: i.output };
      if (i.kind === 'list') return { list: i.items.map((it) => ({ step: it.stepKey, output: it.output })) };
      return null;
    }),
  };
}
