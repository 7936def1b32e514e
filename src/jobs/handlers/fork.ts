/**
 * The fork handler, under the multiprocess executor: each step attempt in a
 * forked Node process that loads a bundle of the code location (see
 * step/bundle.ts, so it starts nearly as fast as a bare `node`) and talks
 * to the run's coordinator over its IPC channel. Processes are started ahead
 * of need, so their start-up overlaps the steps running now; `warm` mode
 * reuses them for later steps, and keeps idle ones for later runs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { StepChannel } from '../delegating/coordinator.ts';
import type { StepHandler, StepHandlerContext, StepHealth } from '../delegating/handler.ts';
import type { CodeLocation } from '../executor.ts';
import { stepEntry, type StepEntry } from '../step/bundle.ts';
import type { ToForkedStep } from '../step/fork-main.ts';

export interface ForkHandlerOptions {
  /** isolated: a fresh process per attempt; warm: processes are reused. */
  mode: 'isolated' | 'warm';
  /** Processes kept started ahead of need, at most. */
  maxConcurrent: number;
}

interface StepProc {
  child: ChildProcess;
  /** The attempt it runs now. */
  ctx: StepHandlerContext | null;
  /** Where its messages go while an attempt's session is open. */
  listener: { onMessage: (m: unknown) => void; onClose: (why: string) => void } | null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Exited, or going to: never given another step. */
  retired: boolean;
}

export function forkHandler(location: CodeLocation, opts: ForkHandlerOptions): StepHandler {
  const warm = opts.mode === 'warm';
  const procs = new Set<StepProc>();
  const byAttempt = new Map<StepHandlerContext, StepProc>();
  let entry: StepEntry = { file: '', args: [], execArgv: [], note: null };

  const spawn = (): StepProc => {
    // msgpackr's native string decoder only pays off on large messages; loading it costs a short-lived process more.
    const env = { ...process.env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: process.env['MSGPACKR_NATIVE_ACCELERATION_DISABLED'] ?? 'true' };
    // Step output on stdout would mix with `weft run --json`: everything a step prints goes
    // straight to this process's stderr (its file descriptor, no pipe to pump).
    const child = fork(entry.file, [...entry.args, ...(warm ? [] : ['once'])], { serialization: 'advanced', execArgv: entry.execArgv, env, stdio: ['ignore', 2, 2, 'ipc'] });
    const proc: StepProc = { child, ctx: null, listener: null, exit: null, retired: false };
    child.on('message', (m: unknown) => proc.listener?.onMessage(m));
    // Every message the process sent arrives before its channel closes.
    child.on('disconnect', () => {
      proc.retired = true;
      proc.listener?.onClose('the step process closed its channel');
    });
    child.on('exit', (code, signal) => {
      proc.retired = true;
      proc.exit = { code, signal };
      procs.delete(proc);
    });
    child.on('error', () => {}); // 'exit' follows
    procs.add(proc);
    return proc;
  };
  const idle = (): StepProc[] => [...procs].filter((p) => p.ctx === null && !p.retired);

  /** A channel to the process for one attempt: closing it only stops listening. */
  const session = (proc: StepProc): StepChannel => {
    let open = true;
    return {
      send: (msg) => {
        if (open && proc.child.connected) proc.child.send(msg satisfies ToForkedStep);
      },
      listen: (onMessage, onClose) => {
        proc.listener = { onMessage, onClose };
      },
      close: () => {
        open = false;
        proc.listener = null;
      },
    };
  };

  return {
    name: 'fork',

    async prepare(run) {
      entry = await stepEntry(location.module);
      if (entry.note) run.log(entry.note);
      // Warm mode: processes left idle by earlier runs of this code location start this one.
      if (warm) for (const p of takeWarm(warmKey(entry))) procs.add(p);
    },

    async launch(ctx) {
      const proc = idle()[0] ?? spawn();
      proc.ctx = ctx;
      byAttempt.set(ctx, proc);
      // The step first, then the channel: attaching it sends the inputs (start) when they exist.
      proc.child.send({ t: 'step', spec: ctx.spec } satisfies ToForkedStep);
      ctx.attach(session(proc));
      // Processes started ahead, so that their start-up overlaps the steps running now.
      const busy = [...procs].filter((p) => p.ctx !== null).length;
      const target = Math.min(warm ? opts.maxConcurrent - busy : opts.maxConcurrent, ctx.waiting);
      for (let k = idle().length; k < target; k++) spawn();
    },

    async checkHealth(ctx): Promise<StepHealth> {
      const p = byAttempt.get(ctx);
      if (!p?.exit) return { healthy: true };
      const how = p.exit.signal ? `was killed by ${p.exit.signal}` : `exited with code ${p.exit.code}`;
      return { healthy: false, reason: `the step process (pid ${p.child.pid}) ${how} while running step ${ctx.stepKey}` };
    },

    async terminate(ctx) {
      const p = byAttempt.get(ctx);
      byAttempt.delete(ctx);
      if (!p) return;
      p.ctx = null;
      p.listener = null;
      if (ctx.finished && warm && !p.retired) return; // back to the idle ones
      p.retired = true;
      // Isolated mode: a finished process leaves on its own; anything else is stopped now.
      await stop(p, ctx.finished ? 2000 : 0);
    },

    async close() {
      const keep = warm ? idle().filter((p) => p.child.connected) : [];
      for (const p of keep) procs.delete(p);
      putWarm(warmKey(entry), keep);
      await Promise.all([...procs].map((p) => stop(p, 2000, true)));
    },
  };
}

/** Waits for the process to exit: asked to (`exit` message) when `polite`, killed after `graceMs`. */
function stop(p: StepProc, graceMs: number, polite = false): Promise<void> {
  return new Promise<void>((resolve) => {
    const { child } = p;
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    if (polite && child.connected) child.send({ t: 'exit' } satisfies ToForkedStep, () => {});
    if (graceMs === 0) child.kill('SIGKILL');
    else setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
  });
}

/**
 * Idle warm processes by bundle, kept between runs so that later runs in this
 * process start at once. They do not keep the parent alive, and leave after
 * a minute unused (or with the parent: they exit when their IPC channel closes).
 */
const WARM_IDLE_MS = 60_000;
const warmPool = new Map<string, { procs: StepProc[]; timer: NodeJS.Timeout }>();

/** Warm processes serve one code location: its bundle, or the unbundled entry and its module. */
function warmKey(e: StepEntry): string {
  return [e.file, ...e.args].join('\n');
}

function putWarm(entry: string, procs: StepProc[]): void {
  if (procs.length === 0) return;
  const slot = warmPool.get(entry);
  if (slot) clearTimeout(slot.timer);
  const all = [...(slot?.procs ?? []), ...procs];
  for (const p of all) setRef(p.child, false);
  const timer = setTimeout(() => {
    warmPool.delete(entry);
    for (const p of all) if (p.child.connected) p.child.send({ t: 'exit' } satisfies ToForkedStep, () => {});
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
  for (const p of live) setRef(p.child, true);
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
