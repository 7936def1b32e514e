/**
 * A development cluster on this machine: one scheduler process and N worker
 * processes on loopback, started with the `weft` CLI.
 *
 * No orphans: every child watches its stdin, a pipe from this process; when
 * this process exits for any reason (even kill -9) the pipe closes and the
 * children shut down. Ctrl-C reaches the whole process group, and `close()`
 * stops them explicitly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, type ClientOptions } from '../client/client.ts';
import { WeftError } from '../errors.ts';
import { readTls, temporaryTls, type TlsFiles } from '../protocol/tls.ts';
import type { LogLevel } from '../util/log.ts';
import { CLI_ENTRY } from '../util/self.ts';
import { workerEnv } from '../worker/process-env.ts';

/** The weft CLI of this copy of weft (its sources in a checkout, else the package's). */
export const WEFT_BIN = fileURLToPath(CLI_ENTRY);

/**
 * V8 flags for the scheduler and worker processes, sized for large graphs:
 *
 * - The young generation starts at 1 MiB and doubles after collections up
 *   to 16 MiB; a fresh process holding 100,000 live task records collects
 *   it a dozen times on the way there. Starting at its full size halves the
 *   collection time of a first large graph.
 * - The old generation's first limit is low, so that first graph also
 *   triggered a full mark-compact in each process. A 128 MiB start defers it
 *   until the heap has really grown; later limits follow the live size.
 *
 * Together about 10% on a cold 100,000-task graph (bench/README.md, "Fifth
 * session"), for about 25 MB more memory per process. Node flags take effect
 * only at process start: give them in NODE_OPTIONS to a scheduler or worker
 * started by hand.
 */
export const CLUSTER_NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--initial-old-space-size=128'];

export interface LocalClusterOptions {
  workers?: number;
  threadsPerWorker?: number;
  /** Resources every worker declares, e.g. `{ GPU: 1 }`; or one object per worker. */
  resources?: Record<string, number> | Record<string, number>[];
  token?: string;
  /** Scheduler port; 0 (default) picks a free one. */
  port?: number;
  logLevel?: LogLevel;
  /** Working directory of the workers (relative task modules resolve against it). */
  cwd?: string;
  /** Extra scheduler flags, e.g. ['--heartbeat-timeout', '2s']. */
  schedulerArgs?: string[];
  /** Extra flags for every worker, e.g. ['--cancel-grace', '1', '--thread-heap-limit', '256']. */
  workerArgs?: string[];
  /** Each worker under a nanny that starts it again when it dies (default true); `workers[i].pid` is then the nanny's. */
  nanny?: boolean;
  /** Each worker's memory limit, e.g. '1GB' or bytes; 'auto' (default): this machine's memory shared by the workers; 0: none. */
  memoryLimit?: number | string;
  /**
   * TLS between every process (wss://, the dashboard https://): 'self-signed'
   * makes a temporary CA and a certificate for 127.0.0.1, removed on close
   * (Dask's `Security.temporary()`); or files of your own.
   */
  tls?: 'self-signed' | TlsFiles;
  /**
   * The scheduler's HTTP port for the dashboard, /health, /metrics and
   * /api/v1: 0 (default) a free one, null none, 'default' the scheduler's
   * own default (8787, or a free one when that is taken, as `weft cluster`).
   */
  dashboardPort?: number | null | 'default';
  /** Seconds to wait for everything to start. */
  startTimeoutSeconds?: number;
  /** Web origins whose pages may open WebSockets to the scheduler and workers (none by default). */
  allowOrigins?: readonly string[];
  /** Host names the dashboard answers besides IP addresses and localhost. */
  allowHosts?: readonly string[];
}

interface Child {
  /** The process started: the worker's nanny, or the worker itself (nanny: false). */
  proc: ChildProcess;
  name: string;
  address: string;
  /** The worker process now (its nanny says when it starts one again). */
  workerPid: number | undefined;
}

/** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. */
async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, 'exit');
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Starts `weft <args>` and resolves with the first JSON line it prints on stdout. */
/**
 * `token`: given to the child in its environment (WEFT_TOKEN), never on its
 * command line, where `ps` shows it to every user. `onReady` hears every
 * ready line (a nanny prints one each time it starts its worker again).
 * `childEnv`: its environment (a worker without a nanny gets workerEnv's).
 */
async function startChild(args: string[], cwd: string, timeoutMs: number, token: string | undefined, onReady?: (ready: Record<string, string | number>) => void, childEnv: NodeJS.ProcessEnv = process.env): Promise<{ proc: ChildProcess; ready: Record<string, string> }> {
  // WEFT_NODE_ARGS passes flags to the children's node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof".
  const nodeArgs = (process.env['WEFT_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const env: NodeJS.ProcessEnv = { ...childEnv, WEFT_EXIT_WITH_STDIN: '1' };
  if (token) env['WEFT_TOKEN'] = token;
  else delete env['WEFT_TOKEN']; // a cluster without a token: not this process's, if it has one
  const proc = spawn(process.execPath, [...CLUSTER_NODE_FLAGS, ...nodeArgs, WEFT_BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const ready = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new WeftError(`weft ${args[0]} did not start within ${timeoutMs} ms`));
    }, timeoutMs);
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new WeftError(`weft ${args[0]} exited during start-up (${signal ?? `code ${code}`}); see its log above`));
    });
    lines.on('line', (line) => {
      try {
        const parsed = JSON.parse(line) as Record<string, string>;
        if (parsed['address']) {
          clearTimeout(timer);
          onReady?.(parsed);
          resolve(parsed);
        }
      } catch {
        // not the ready line
      }
    });
  });
  proc.removeAllListeners('exit');
  return { proc, ready };
}

export class LocalCluster {
  private closing: Promise<void> | null = null;
  private readonly onExit = (): void => this.killAll();

  private constructor(
    readonly address: string,
    private readonly scheduler: ChildProcess,
    private readonly workerProcs: Child[],
    private readonly token: string | undefined,
    private readonly dashboard: string | null,
    /** What a client of this cluster trusts and shows (TLS), and what to remove once it has stopped. */
    private readonly clientTls: ClientOptions['tls'] | undefined,
    private readonly cleanup: () => void,
    private readonly spawnWorker: (index: number) => Promise<Child>,
  ) {
    process.once('exit', this.onExit);
    this.nextIndex = workerProcs.length;
  }

  /** The number of the next worker started (its name: local-N). */
  private nextIndex: number;
  /** scale() and adapt()'s changes, one after the other. */
  private scaling: Promise<void> = Promise.resolve();
  private adaptive: { timer: NodeJS.Timeout; client: Promise<Client> } | null = null;

  /**
   * Starts or retires workers until there are `n` (Dask's `cluster.scale`).
   * Retiring hands the results only those workers hold to the others first
   * (retireWorkers): nothing is computed again. The least busy go first.
   */
  scale(n: number): Promise<void> {
    if (!Number.isInteger(n) || n < 0) return Promise.reject(new WeftError(`scale(n) takes a whole number of workers >= 0 (got ${n})`));
    const run = this.scaling.then(() => this.scaleNow(n));
    this.scaling = run.catch(() => {});
    return run;
  }

  private async scaleNow(n: number): Promise<void> {
    if (this.closing) return;
    const have = this.workerProcs.length;
    if (n > have) {
      const started = await Promise.all(Array.from({ length: n - have }, () => this.spawnWorker(this.nextIndex++)));
      this.workerProcs.push(...started);
      return;
    }
    if (n === have) return;
    const client = await this.client();
    try {
      const byName = new Map((await client.workers()).map((w) => [w.name, w]));
      const order = [...this.workerProcs].sort((a, b) => {
        const wa = byName.get(a.name);
        const wb = byName.get(b.name);
        return (wa?.processing ?? 0) - (wb?.processing ?? 0) || (wa?.storedBytes ?? 0) - (wb?.storedBytes ?? 0);
      });
      const leaving = order.slice(0, have - n);
      const r = await client.retireWorkers(leaving.map((w) => w.name));
      if (r.failed.length > 0) throw new WeftError(`could not retire ${leaving.map((w) => w.name).join(', ')}: ${r.failed.join('; ')}`);
      // A retired worker exits (and its nanny with it): stop() waits for that, or ends it.
      await Promise.all(leaving.map((w) => stop(w.proc)));
      for (const w of leaving) this.workerProcs.splice(this.workerProcs.indexOf(w), 1);
    } finally {
      await client.close();
    }
  }

  /**
   * Starts and retires workers as the work asks (Dask's `cluster.adapt`):
   * every `interval` seconds (default 1) the scheduler's adaptive target,
   * clamped to [minimum, maximum], is compared with the workers there are:
   * more are started at once; fewer are retired once the target has been
   * lower `waitCount` times in a row (default 3). `targetDuration` (default
   * 5 s): the work a thread should have. adapt(null) stops adapting.
   */
  adapt(opts: { minimum?: number; maximum?: number; targetDuration?: number; waitCount?: number; interval?: number } | null): void {
    if (this.adaptive) {
      clearInterval(this.adaptive.timer);
      void this.adaptive.client.then((c) => c.close()).catch(() => {});
      this.adaptive = null;
    }
    if (!opts) return;
    const min = opts.minimum ?? 0;
    const max = opts.maximum ?? Infinity;
    if (!(min >= 0 && max >= min)) throw new WeftError(`adapt: minimum ${min} and maximum ${max} must make a range (0 <= minimum <= maximum)`);
    const client = this.client();
    client.catch(() => {});
    let lower = 0;
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.closing) return;
      busy = true;
      void (async () => {
        try {
          const want = Math.min(max, Math.max(min, await (await client).adaptiveTarget(opts.targetDuration ?? 5)));
          const have = this.workerProcs.length;
          if (want > have) {
            lower = 0;
            await this.scale(want);
          } else if (want < have) {
            if (++lower >= (opts.waitCount ?? 3)) {
              lower = 0;
              await this.scale(want);
            }
          } else lower = 0;
        } catch {
          // A failed look (the scheduler busy, a retire refused): the next tick looks again.
        } finally {
          busy = false;
        }
      })();
    }, (opts.interval ?? 1) * 1000);
    timer.unref();
    this.adaptive = { timer, client };
  }

  static async start(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
    const n = opts.workers ?? 2;
    const threads = opts.threadsPerWorker ?? 1;
    const cwd = opts.cwd ?? process.cwd();
    const timeout = (opts.startTimeoutSeconds ?? 30) * 1000;
    let tlsDir: string | null = null;
    let files: TlsFiles | undefined;
    if (opts.tls === 'self-signed') {
      const made = temporaryTls();
      tlsDir = made.dir;
      files = made.files;
    } else files = opts.tls;
    const cleanup = (): void => {
      if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
    };
    const tlsArgs = files ? [...(files.cert && files.key ? ['--tls-cert', files.cert, '--tls-key', files.key] : []), ...(files.ca ? ['--tls-ca', files.ca] : []), ...(files.requireClientCert ? ['--tls-require-client-cert'] : [])] : [];
    const read = files ? readTls(files) : null;
    const clientTls = read ? { ...(read.ca ? { ca: read.ca } : {}), ...(read.cert && read.key ? { cert: read.cert, key: read.key } : {}) } : undefined;
    const origins = (opts.allowOrigins ?? []).flatMap((o) => ['--allow-origin', o]);
    const common = ['--log-level', opts.logLevel ?? 'warn', ...tlsArgs, ...origins];
    // 'auto': the machine's memory shared by the workers, as Dask's LocalCluster does.
    const memoryArg = opts.memoryLimit === undefined || opts.memoryLimit === 'auto' ? String(Math.floor(totalmem() / n)) : String(opts.memoryLimit);
    const dashboard = opts.dashboardPort === null ? ['--no-dashboard'] : opts.dashboardPort === 'default' ? [] : ['--dashboard-port', String(opts.dashboardPort ?? 0)];
    let started: { proc: ChildProcess; ready: Record<string, string> };
    try {
      const hosts = (opts.allowHosts ?? []).flatMap((h) => ['--allow-host', h]);
      started = await startChild(['scheduler', '--port', String(opts.port ?? 0), ...dashboard, ...hosts, ...common, ...(opts.schedulerArgs ?? [])], cwd, timeout, opts.token);
    } catch (err) {
      cleanup();
      throw err;
    }
    const { proc: scheduler, ready } = started;
    const address = ready['address'] as string;
    const workers: Child[] = [];
    /** Starts worker number i (its name local-i), under its nanny unless `nanny: false`. */
    const spawnWorker = async (i: number): Promise<Child> => {
      const res = Array.isArray(opts.resources) ? opts.resources[i] : opts.resources;
      const resArgs = res ? Object.entries(res).flatMap(([k, v]) => ['--resources', `${k}=${v}`]) : [];
      const child: Child = { proc: null as unknown as ChildProcess, name: '', address: '', workerPid: undefined };
      const onReady = (ready: Record<string, string | number>): void => {
        child.name = String(ready['name'] ?? '');
        child.address = String(ready['address'] ?? '');
        child.workerPid = typeof ready['workerPid'] === 'number' ? ready['workerPid'] : child.proc?.pid;
      };
      const s = await startChild(['worker', address, '--nthreads', String(threads), '--name', `local-${i}`, ...resArgs, ...common, '--memory-limit', memoryArg, ...(opts.nanny === false ? ['--no-nanny'] : []), ...(opts.workerArgs ?? [])], cwd, timeout, opts.token, onReady, opts.nanny === false ? workerEnv(process.env) : process.env);
      child.proc = s.proc;
      child.workerPid ??= s.proc.pid;
      return child;
    };
    try {
      workers.push(...(await Promise.all(Array.from({ length: n }, (_, i) => spawnWorker(i)))));
    } catch (err) {
      scheduler.kill('SIGKILL');
      cleanup();
      throw err;
    }
    return new LocalCluster(address, scheduler, workers, opts.token, ready['dashboard'] ?? null, clientTls, cleanup, spawnWorker);
  }

  /** A client connected to this cluster. */
  client(opts: ClientOptions = {}): Promise<Client> {
    return Client.connect(this.address, { token: this.token, ...(this.clientTls ? { tls: this.clientTls } : {}), ...opts });
  }

  /** Where the scheduler serves /health, /metrics and /api/v1/workers (null: turned off). */
  get dashboardUrl(): string | null {
    return this.dashboard;
  }

  get schedulerPid(): number | undefined {
    return this.scheduler.pid;
  }

  /**
   * The workers, in start order: `pid` is the worker process now (a nanny
   * starts a new one when it dies), `nannyPid` its nanny's (undefined with
   * `nanny: false`), `proc` the process this cluster started.
   */
  get workers(): readonly { pid: number | undefined; nannyPid: number | undefined; name: string; address: string; proc: ChildProcess }[] {
    return this.workerProcs.map((w) => ({ pid: w.workerPid, nannyPid: w.workerPid !== w.proc.pid ? w.proc.pid : undefined, name: w.name, address: w.address, proc: w.proc }));
  }

  /**
   * Stops the scheduler, then the workers; resolves when all have exited.
   * The scheduler goes first so that it sees the workers leave as part of
   * its own shutdown, not as workers lost (with a warning each).
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.adapt(null);
    process.removeListener('exit', this.onExit);
    // A scale under way finishes first: a worker it starts is then among those stopped.
    this.closing = this.scaling.then(() => stop(this.scheduler)).then(async () => {
      await Promise.all(this.workerProcs.map((w) => stop(w.proc)));
      this.cleanup();
    });
    return this.closing;
  }

  private killAll(): void {
    for (const p of [...this.workerProcs.map((w) => w.proc), this.scheduler]) {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    this.cleanup();
  }
}
