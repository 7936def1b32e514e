/**
 * The nanny: `weft worker` runs the worker as a child process of a small
 * supervisor (as Dask's nanny does), which starts it again when it dies
 * (crash, out of memory, kill -9), after a back-off, so that a cluster keeps
 * its size. A worker that leaves on purpose (exit code 0: the scheduler shut
 * down or retired it) is not restarted, and the nanny leaves too.
 *
 * The worker reads the nanny's pipe on its stdin: if the nanny dies, even by
 * kill -9, the worker sees the pipe close and stops (no orphan). Ctrl-C or
 * SIGTERM to the nanny stops the worker, then the nanny.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../util/log.ts';
import { onStopSignals } from './stop-signals.ts';
import { RESTART_EXIT_CODE } from '../worker/exit-codes.ts';
import { WORKER_NODE_FLAGS, workerEnv } from '../worker/process-env.ts';


export interface NannyTimes {
  /** A worker that dies during its start-up (a crash loop) waits this long before the next, doubling to `maxBackoffMs`. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /** A worker that dies before it joined, or within this long of joining, counts as dying in its start-up; one that ran longer is started again at once. */
  youngMs: number;
  /** A worker up this long has shown it works: the back-off starts over. */
  healthyMs: number;
  /** A worker not ready (joined) this long after it was started is killed and started again (a start-up that hangs). */
  startupTimeoutMs: number;
}

export const NANNY_DEFAULTS: NannyTimes = { firstBackoffMs: 1000, maxBackoffMs: 30_000, youngMs: 2000, healthyMs: 60_000, startupTimeoutMs: 60_000 };

/** How long a worker may take to stop once told to. */
const STOP_MS = 10_000;

/**
 * A worker that died without closing (kill -9, out of memory) left its
 * spilled results on disk (worker/spill.ts names the directory after its
 * pid): removed here.
 */
function removeSpilled(args: readonly string[], pid: number | undefined): void {
  if (pid === undefined) return;
  const i = args.indexOf('--local-directory');
  const inline = args.find((a) => a.startsWith('--local-directory='));
  const dir = inline ? inline.slice('--local-directory='.length) : i >= 0 && args[i + 1] ? (args[i + 1] as string) : tmpdir();
  try {
    for (const name of readdirSync(dir)) if (name.startsWith(`weft-worker-${pid}-`)) rmSync(join(dir, name), { recursive: true, force: true });
  } catch {
    // the directory is gone or unreadable: nothing of ours to remove
  }
}

/**
 * Supervises `weft worker ARGS --no-nanny` until told to stop or the worker
 * leaves on purpose (exit 0). Never returns.
 *
 * Every death of the worker leads to exactly one decision, logged at warn:
 * started again at once (it had run: a kill, a crash, out of memory), after
 * a back-off (it died before joining, or within `youngMs` of it: a crash loop, doubling up to
 * `maxBackoffMs`, and starting over once a worker has been up `healthyMs`),
 * or not (it left on purpose, or never started at all: its configuration is
 * wrong). A worker that never becomes ready is killed after
 * `startupTimeoutMs` and counts as dying in its start-up. No pending restart
 * is dropped: one timer at most waits, and only `stop` clears it.
 */
export function runNanny(args: readonly string[], log: Logger, times: NannyTimes = NANNY_DEFAULTS): Promise<never> {
  let child: ChildProcess | null = null;
  let stopping = false;
  let backoff = times.firstBackoffMs;
  let restarts = 0;
  /** A worker of this nanny became ready once: before that, a failure is its configuration's, and restarting would not help. */
  let everReady = false;
  let restartTimer: NodeJS.Timeout | null = null;

  const start = (): void => {
    restartTimer = null;
    if (stopping) return;
    let readyAt = -1;
    // The same node flags and entry as this process (process.argv[1] is weft's launcher).
    const proc = spawn(process.execPath, [...process.execArgv, ...WORKER_NODE_FLAGS, process.argv[1] as string, 'worker', ...args, '--no-nanny'], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...workerEnv(process.env), WEFT_EXIT_WITH_STDIN: '1', WEFT_NANNY: '1' },
    });
    child = proc;
    // A start-up that hangs (a scheduler that never answers, say) would leave no worker and no word: it is cut short.
    const startup = setTimeout(() => {
      log.warn({ pid: proc.pid, timeoutMs: times.startupTimeoutMs }, 'the worker did not join its scheduler in time: the nanny kills it and starts another');
      proc.kill('SIGKILL');
    }, times.startupTimeoutMs);
    startup.unref();
    // The worker's ready line goes out with the nanny's pid and restart count: LocalCluster and scripts read it.
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let out = line;
      try {
        const ready = JSON.parse(line) as Record<string, unknown>;
        if (ready['address']) {
          everReady = true;
          readyAt = Date.now();
          clearTimeout(startup);
          out = JSON.stringify({ ...ready, workerPid: proc.pid, nanny: process.pid, restarts });
        }
      } catch {
        // not the ready line
      }
      process.stdout.write(`${out}\n`);
    });
    proc.on('error', (err) => log.error({ err: err.message }, 'the nanny could not start its worker'));
    proc.on('exit', (code, signal) => {
      clearTimeout(startup);
      removeSpilled(args, proc.pid);
      if (stopping) process.exit(code ?? 0);
      if (code === 0) {
        log.warn('the worker left on purpose (exit 0): the nanny stops too, and does not start it again');
        process.exit(0);
      }
      if (!everReady) {
        log.warn({ code, signal }, 'the worker never started (see its error above): the nanny does not start it again');
        process.exit(code ?? 1);
      }
      restarts++;
      if (code === RESTART_EXIT_CODE) {
        // Asked to (client.restart): a new process now.
        log.warn({ restarts }, 'the worker asked to be restarted: the nanny starts it again now');
        start();
        return;
      }
      const now = Date.now();
      if (readyAt >= 0 && now - readyAt >= times.healthyMs) backoff = times.firstBackoffMs;
      const young = readyAt < 0 || now - readyAt < times.youngMs;
      if (!young) {
        log.warn({ code, signal, restarts }, 'the worker died: the nanny starts it again now');
        start();
        return;
      }
      const wait = backoff;
      backoff = Math.min(backoff * 2, times.maxBackoffMs);
      log.warn({ code, signal, restarts, restartInMs: wait }, 'the worker died starting (or soon after): the nanny starts it again after a back-off');
      restartTimer = setTimeout(start, wait);
    });
  };

  const stop = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    if (restartTimer) clearTimeout(restartTimer);
    log.info({ reason }, 'nanny stopping its worker');
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) process.exit(0);
    c.kill('SIGTERM');
    setTimeout(() => c.kill('SIGKILL'), STOP_MS).unref();
  };
  onStopSignals(stop);
  start();
  return new Promise<never>(() => {});
}
