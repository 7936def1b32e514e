/**
 * `weft daemon`: starts queued runs (queue.ts) and runs the run monitor
 * (monitor.ts), every `runQueue.dequeueInterval`. Each run it starts is a
 * `weft runs launch RUN` process of its own, so a run that crashes takes
 * nothing else down. Stopping the daemon (Ctrl-C, SIGTERM) cancels the runs
 * it started and waits for their processes: none is left behind, and each
 * canceled run can be re-executed from failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { weftCommand } from '../util/self.ts';
import type { Logger } from '../util/log.ts';
import { untrusted } from '../util/untrusted.ts';
import type { Instance } from './instance.ts';
import { failStaleRuns } from './monitor.ts';
import { runsToStart } from './queue.ts';
import { IN_PROGRESS_STATUSES } from './status.ts';

/** Queued runs looked at per tick: the oldest and highest first. */
const QUEUED_PER_TICK = 1000;

export class RunDaemon {
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private readonly children = new Map<string, ChildProcess>();
  private stopped = false;

  constructor(
    private readonly instance: Instance,
    private readonly log: Logger,
  ) {}

  start(): void {
    const every = this.instance.config.runQueue.dequeueInterval;
    const loop = (): void => {
      this.ticking = this.tick()
        .catch((err: unknown) => this.log.error({ err }, `the daemon's tick failed: ${(err as Error).message}; trying again in ${every} ms`))
        .finally(() => {
          this.ticking = null;
          if (!this.stopped) this.timer = setTimeout(loop, every);
        });
    };
    loop();
  }

  /** Runs it launched that are still running. */
  get launched(): string[] {
    return [...this.children.keys()];
  }

  /** One pass: the run monitor, then start what the limits allow. */
  async tick(): Promise<void> {
    await failStaleRuns(this.instance, { log: (m) => this.log.warn(m) });
    if (this.stopped) return;
    const storage = this.instance.storage;
    const [queued, inProgress] = await Promise.all([storage.listRuns({ statuses: ['QUEUED'], limit: QUEUED_PER_TICK }), storage.listRuns({ statuses: [...IN_PROGRESS_STATUSES], limit: 100_000 })]);
    const { maxConcurrentRuns, tagConcurrencyLimits } = this.instance.config.runQueue;
    for (const run of runsToStart(queued, inProgress, { maxConcurrentRuns, tagConcurrencyLimits })) {
      if (this.stopped) return;
      const claimed = await storage.transition(run.runId, { type: 'RUN_STARTING', runId: run.runId, stepKey: null, timestamp: Date.now(), message: `the daemon (pid ${process.pid}) is starting run ${run.runId}` }, ['QUEUED']);
      if (!claimed) continue; // Canceled meanwhile, or another daemon took it.
      this.launch(run.runId, run.job);
    }
  }

  private launch(runId: string, job: string): void {
    const [node, entry] = weftCommand();
    const child = spawn(node, [entry, 'runs', 'launch', runId, '--json', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, WEFT_HOME: this.instance.home } });
    this.children.set(runId, child);
    this.log.info({ run: runId, job, pid: child.pid }, `started run ${runId} of job ${job}`);
    if (child.stderr) createInterface({ input: child.stderr }).on('line', (line) => this.log.warn({ run: runId }, untrusted(line, 2000)));
    child.on('exit', (code, signal) => {
      this.children.delete(runId);
      this.log.info({ run: runId, code, signal }, `run ${runId} ended (its process exited ${signal ?? code})`);
    });
  }

  /** Stops starting runs; cancels those it started (SIGTERM) and waits for their processes. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    const exits = [...this.children.values()].map((c) => new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()))));
    for (const c of this.children.values()) c.kill('SIGTERM');
    await Promise.all(exits);
  }
}
