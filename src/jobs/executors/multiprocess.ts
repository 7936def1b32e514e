/**
 * Runs each step in its own OS process. Outputs cross processes as msgpack
 * (no shared filesystem). Step processes are started ahead of need, so their
 * start-up (about 85 ms for a bare node) overlaps running steps; `warm` mode
 * reuses processes for later steps of the run instead of one per step.
 *
 * A step process that crashes or is killed fails its step with the exit
 * code or signal. Cancelling the run stops every step process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { executor, type ExecutionContext, type ExecutorDefinition } from '../executor.ts';
import { event, type RunEvent } from '../events.ts';
import type { PlannedStep } from '../plan.ts';
import { failureOrRetry } from '../step-runner.ts';
import type { FromStepProcess, ToStepProcess } from '../step-main.ts';
import { Inbox, retriesConfig, retriesEnabled } from './common.ts';
import { mapStack, stepBundle } from '../step-bundle.ts';

const tagLimit = z.object({ key: z.string().min(1), value: z.string().optional(), limit: z.number().int().min(1) }).strict();

export const multiprocessConfig = z
  .object({
    /** Steps running at once (default: the number of CPUs). */
    maxConcurrent: z.number().int().min(1).max(1024).optional(),
    /** At most `limit` running steps whose op has tag `key` (with `value`, if given). */
    tagConcurrencyLimits: z.array(tagLimit).default([]),
    retries: retriesConfig,
    /** isolated: a fresh process per step (default); warm: processes are reused, within the run and by later runs in this process. */
    mode: z.enum(['isolated', 'warm']).default('isolated'),
  })
  .strict();
export type MultiprocessConfig = z.infer<typeof multiprocessConfig>;


interface StepProc {
  child: ChildProcess;
  /** The run this process reports to now (replaced when a warm process moves to another run). */
  notify: (item: Incoming) => void;
  /** The step it runs now, and whether that step has ended (success, failure, skip or retry). */
  step: PlannedStep | null;
  attempt: number;
  ended: boolean;
  /** Exited, or going to (isolated mode after its step, or disconnected): never given another step. */
  retired: boolean;
}

type Incoming = { proc: StepProc; msg: FromStepProcess['msgs'][number] } | { proc: StepProc; exit: { code: number | null; signal: NodeJS.Signals | null } };

export const multiprocessExecutor: ExecutorDefinition<MultiprocessConfig> = executor(
  { name: 'multiprocess', configSchema: multiprocessConfig, requirements: ['reconstructable-job'] },
  ({ config }) => ({
    execute: (ctx) => runMultiprocess(ctx, config),
  }),
);

async function* runMultiprocess(ctx: ExecutionContext, config: MultiprocessConfig): AsyncGenerator<RunEvent> {
  const location = ctx.location;
  if (!location) throw new Error('the multiprocess executor needs the code location of the job');
  const entry = fileURLToPath(await stepBundle(location.module));
  const maxConcurrent = config.maxConcurrent ?? availableParallelism();
  const retries = retriesEnabled(config.retries);
  const warm = config.mode === 'warm';
  const active = ctx.activeExecution();
  const procs = new Set<StepProc>();
  const inbox = new Inbox<Incoming>();
  const notify = (item: Incoming): void => inbox.push(item);

  const spawn = (): StepProc => {
    // msgpackr's native string decoder only pays off on large messages; loading it costs a short-lived process more.
    const env = { ...process.env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: process.env['MSGPACKR_NATIVE_ACCELERATION_DISABLED'] ?? 'true' };
    // Step output on stdout would mix with `weft run --json`: everything a step prints goes
    // straight to this process's stderr (its file descriptor, no pipe to pump).
    const child = fork(entry, warm ? [] : ['once'], { serialization: 'advanced', execArgv: [], env, stdio: ['ignore', 2, 2, 'ipc'] });
    const proc: StepProc = { child, notify, step: null, attempt: 0, ended: true, retired: false };
    child.on('message', (batch: FromStepProcess) => {
      for (const msg of batch.msgs) proc.notify({ proc, msg });
    });
    // The exit is reported once the IPC channel is closed too, so every message the process sent comes first.
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let disconnected = false;
    const maybeExited = (): void => {
      if (exit && disconnected) proc.notify({ proc, exit });
    };
    child.on('exit', (code, signal) => {
      proc.retired = true;
      exit = { code, signal };
      maybeExited();
    });
    child.on('disconnect', () => {
      proc.retired = true;
      disconnected = true;
      maybeExited();
    });
    child.on('error', () => {}); // 'exit' follows
    procs.add(proc);
    return proc;
  };
  // Warm mode: processes left idle by earlier runs of this code location start this one.
  if (warm) for (const p of takeWarm(entry)) {
    p.notify = notify;
    procs.add(p);
  }
  const idle = (): StepProc | undefined => [...procs].find((p) => p.step === null && !p.retired);
  const running = (): StepProc[] => [...procs].filter((p) => p.step !== null);

  const pending: PlannedStep[] = [];
  const underLimits = (step: PlannedStep): boolean => {
    for (const l of config.tagConcurrencyLimits) {
      if (!matches(step, l)) continue;
      const n = running().filter((p) => p.step && matches(p.step, l)).length;
      if (n >= l.limit) return false;
    }
    return true;
  };
  const launch = (step: PlannedStep, proc: StepProc): void => {
    proc.step = step;
    proc.attempt = active.attempt(step.key);
    proc.ended = false;
    const msg: ToStepProcess = { t: 'run', runId: ctx.runId, jobName: location.jobName, stepKey: step.key, attempt: proc.attempt, retries, runConfig: ctx.runConfig, inputs: ctx.inputBytesFor(step) };
    proc.child.send(msg);
  };

  const onAbort = (): void => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!ctx.signal.aborted) {
      pending.push(...active.ready());
      yield* active.drainEvents();
      // Start what the limits allow, in plan order; keep processes started ahead for what waits.
      for (let i = 0; i < pending.length && running().length < maxConcurrent; ) {
        const step = pending[i] as PlannedStep;
        if (!underLimits(step)) {
          i++;
          continue;
        }
        pending.splice(i, 1);
        launch(step, idle() ?? spawn());
      }
      // Processes started ahead, so that their start-up overlaps the steps running now.
      const spare = [...procs].filter((p) => p.step === null && !p.retired).length;
      const notStarted = pending.length + active.stepsWith('pending').length;
      const target = warm ? Math.min(maxConcurrent - running().length, notStarted) : Math.min(maxConcurrent, notStarted);
      for (let k = spare; k < target; k++) spawn();

      if (running().length === 0 && pending.length === 0) {
        if (active.isComplete) break;
        const wait = active.nextRetryIn();
        if (wait === null) break;
        await inbox.wait(wait, ctx.signal);
        continue;
      }
      if (inbox.size === 0) await inbox.wait(active.nextRetryIn(), ctx.signal);
      while (inbox.size > 0) {
        const item = inbox.shift() as Incoming;
        const p = item.proc;
        if ('exit' in item) {
          procs.delete(p);
          if (p.step && !p.ended) {
            // Died in the middle of a step: that step fails with the reason (or retries, per its policy).
            const how = item.exit.signal ? `was killed by ${item.exit.signal}` : `exited with code ${item.exit.code}`;
            const err = Object.assign(new Error(`the step process (pid ${p.child.pid}) ${how} while running step ${p.step.key}`), { name: 'StepProcessCrash' });
            const ev = failureOrRetry({ runId: ctx.runId, step: p.step, inputs: [], attempt: p.attempt, retries, signal: ctx.signal }, err);
            ev.pid = p.child.pid;
            active.handle(ev);
            yield ev;
          }
          p.step = null;
          continue;
        }
        const msg = item.msg;
        if (msg.t === 'event') {
          const ev = msg.ev;
          if (ev.error?.stack) ev.error.stack = mapStack(ev.error.stack);
          if (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_UP_FOR_RETRY') p.ended = true;
          active.handle(ev);
          yield ev;
        } else if (msg.t === 'done') {
          p.step = null;
          if (!warm) {
            p.retired = true;
            p.child.disconnect();
          }
        } else if (msg.t === 'load-error') {
          throw Object.assign(new Error(`a step process could not load ${location.module}: ${msg.error.message}`), { stack: msg.error.stack });
        }
        // 'ready': nothing to do; a step sent before it waits in the process's queue.
      }
    }
    if (ctx.signal.aborted) {
      for (const p of running()) {
        if (p.step && !p.ended) yield event('STEP_FAILURE', ctx.runId, p.step.key, `step ${p.step.key} was stopped: the run was canceled`, { attempt: p.attempt, pid: p.child.pid, error: { name: 'CancelledError', message: 'the run was canceled' } });
      }
      active.abandon();
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    const keep = warm && !ctx.signal.aborted ? [...procs].filter((p) => p.step === null && !p.retired && p.child.connected) : [];
    for (const p of keep) procs.delete(p);
    putWarm(entry, keep);
    await stopAll(procs);
  }

}

/**
 * Idle warm processes by bundle, kept between runs so that later runs in this
 * process start at once. They do not keep the parent alive, and leave after
 * a minute unused (or with the parent: they exit when their IPC channel closes).
 */
const WARM_IDLE_MS = 60_000;
const warmPool = new Map<string, { procs: StepProc[]; timer: NodeJS.Timeout }>();

function putWarm(entry: string, procs: StepProc[]): void {
  if (procs.length === 0) return;
  const slot = warmPool.get(entry);
  if (slot) clearTimeout(slot.timer);
  const all = [...(slot?.procs ?? []), ...procs];
  for (const p of all) {
    p.notify = () => {}; // nobody listens until a run takes it
    setRef(p.child, false);
  }
  const timer = setTimeout(() => {
    warmPool.delete(entry);
    for (const p of all) if (p.child.connected) p.child.send({ t: 'exit' } satisfies ToStepProcess, () => {});
  }, WARM_IDLE_MS);
  timer.unref();
  warmPool.set(entry, { procs: all, timer });
}

function takeWarm(entry: string): StepProc[] {
  const slot = warmPool.get(entry);
  if (!slot) return [];
  warmPool.delete(entry);
  clearTimeout(slot.timer);
  const live = slot.procs.filter((p) => !p.retired && p.child.connected);
  for (const p of live) {
    setRef(p.child, true);
  }
  return live;
}

/** Whether a child (its process, IPC channel and pipes) keeps this process alive. */
function setRef(child: ChildProcess, on: boolean): void {
  const handles = [child, (child as unknown as { channel?: { ref(): void; unref(): void } }).channel, child.stdout, child.stderr] as ({ ref?(): void; unref?(): void } | null | undefined)[];
  for (const h of handles) {
    if (on) h?.ref?.();
    else h?.unref?.();
  }
}

function matches(step: PlannedStep, l: { key: string; value?: string | undefined }): boolean {
  const v = step.tags[l.key];
  return v !== undefined && (l.value === undefined || v === l.value);
}

/** Ends every step process and waits for them to exit. */
async function stopAll(procs: Set<StepProc>): Promise<void> {
  await Promise.all(
    [...procs].map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
          p.child.once('exit', () => resolve());
          if (p.child.connected) p.child.send({ t: 'exit' } satisfies ToStepProcess, () => {});
          setTimeout(() => p.child.kill('SIGKILL'), 2000).unref();
        }),
    ),
  );
}
