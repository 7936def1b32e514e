/**
 * The `weft` command line: scheduler, worker, cluster, example.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { readTls, type TlsOptions } from '../protocol/tls.ts';
import { onStopSignals } from './stop-signals.ts';
import { createLogger, LOG_LEVELS, type Logger, type LogLevel } from '../util/log.ts';

const HELP: Record<string, string> = {
  main: `weft: a distributed task-graph runtime for TypeScript

Usage: weft <command> [options]

Commands:
  scheduler              start a scheduler
  worker ADDRESS         start a worker that joins the scheduler at ADDRESS
  cluster                start a development cluster (scheduler + workers) on loopback
  example                start a local cluster, run an example graph, print the result
  run MODULE --job NAME  run a job of a code location with its executor
  list MODULE            list the jobs and assets of a code location
  step                   run one step of a run (started by step handlers: containers, pods)
  bundle MODULE...       prebuild code locations for weft step (in an image's build)
  queue-worker           take steps from queues on Redis and run them (the queue executor's workers)
  queue status           waiting, active and delayed steps per queue, and the live workers

Run 'weft <command> --help' for a command's options.`,
  scheduler: `Usage: weft scheduler [--host 127.0.0.1] [--port 8786] [--token T]

Options:
  --host HOST                 interface to bind (default 127.0.0.1; any other needs a token)
  --port PORT                 port (default 8786; 0 picks a free one)
  --token-file FILE           require the shared secret in FILE from clients and workers (or WEFT_TOKEN;
                              --token T works too, but shows it to every user in ps); off loopback it
                              must be at least 16 characters
  --heartbeat-timeout MS      remove a worker silent this long (default 15000)
  --no-worker-timeout MS      err a task no worker can run after this long (default 30000)
  --dashboard-port PORT       HTTP port of the dashboard (/status, /workers, /tasks, /runs), /health,
                              /metrics (Prometheus) and /api/v1 (default 8787; 0 picks a free one);
                              with a token, it wants it too
  --no-dashboard              serve no HTTP port
  --tls-cert FILE --tls-key FILE  serve TLS (wss://; the dashboard https://) with this certificate
  --tls-ca FILE               trust certificates signed by this CA (default: the system's)
  --tls-require-client-cert   accept only clients with a certificate signed by --tls-ca
  --log-level LEVEL           trace|debug|info|warn|error|fatal|silent (default info, or WEFT_LOG_LEVEL)
  --help                      show this help

Prints {"address": "ws://HOST:PORT", "dashboard": "http://HOST:PORT"} on stdout once listening.`,
  worker: `Usage: weft worker ws://HOST:PORT [--nthreads N] [--resources GPU=1] [--name N] [--token T]

Options:
  --nthreads N        tasks run at once, each on its own thread (default 1)
  --resources R=N     abstract resources this worker offers, e.g. GPU=2 (repeatable, or comma-separated)
  --name NAME         worker name (default host-pid-port)
  --host HOST         interface for this worker's data server (default 127.0.0.1)
  --port PORT         port for the data server (default 0: any free port)
  --token-file FILE   the scheduler's token, from FILE (or WEFT_TOKEN; --token T shows it in ps);
                      needed to bind any address but loopback
  --contact-address ws://HOST:PORT  where peers and clients reach this worker (default: the bound
                      address; bound to 0.0.0.0, this machine's first external IPv4 address)
  --cancel-grace S    a task cancelled while running and still running S seconds later ends
                      with its thread, which is replaced (default 3)
  --tls-cert FILE --tls-key FILE  serve the data port with TLS (wss://), and connect with this
                      certificate where a client certificate is required
  --tls-ca FILE       trust certificates signed by this CA (the scheduler's and peers')
  --tls-require-client-cert  accept only peers with a certificate signed by --tls-ca
  --memory-limit SIZE  e.g. 4GB, 'auto' (this machine's memory) or 0 (default: none): results held
                      past 60% of it spill to disk, past 80% of process memory no task starts,
                      past 95% the worker stops (its nanny starts a fresh one)
  --local-directory DIR  where spilled results go (default: the system's temporary directory)
  --scheduler-reconnect-timeout S  after losing the scheduler (not told to stop), try to connect again
                      for S seconds (default 30; 0: stop at once), keeping the results held
  --no-nanny          run the worker in this process; by default a small supervisor (the nanny)
                      runs it and starts it again when it dies (back-off 1 s, doubling to 30 s)
  --thread-heap-limit MB  heap limit of each executor thread; a task exceeding it fails alone
                      (default: V8's)
  --log-level LEVEL   trace|debug|info|warn|error|fatal|silent (default info)
  --help              show this help

Relative task modules ('./tasks.ts#fn') resolve against the worker's working directory.
Prints {"address": ..., "name": ...} on stdout once it has joined.`,
  cluster: `Usage: weft cluster [--workers 2] [--threads-per-worker 1] [--port 8786] [--dashboard-port 8787 | --no-dashboard]

Starts a scheduler and worker processes on 127.0.0.1 and prints the scheduler's
address and its dashboard's; Ctrl-C stops them all.

Options:
  --workers N               worker processes (default 2)
  --threads-per-worker N    threads per worker (default 1)
  --port PORT               scheduler port (default 8786; 0 picks a free one)
  --dashboard-port PORT     the dashboard's HTTP port (default 8787; 0 picks a free one)
  --no-dashboard            serve no dashboard
  --resources R=N           resources every worker offers (repeatable)
  --token-file FILE         require the token in FILE (or WEFT_TOKEN)
  --log-level LEVEL         log level of the cluster's processes (default warn)
  --help                    show this help`,
  run: `Usage: weft run MODULE --job NAME [--config run.json] [--address ws://HOST:PORT] [--json]

Runs a job of a code location (a module whose default export is a
Definitions object) with the job's executor. On a terminal it shows live
step counts; otherwise it prints one line per event.

Options:
  --job NAME         the job to run (see weft list MODULE)
  --config FILE      run config as JSON: { "ops": { NAME: { "config": ... } }, "execution": { "config": ... } }
  --address ADDR     run the steps on the weft cluster whose scheduler is at ws://HOST:PORT
                     (the cluster executor, whatever executor the job names); its workers
                     import MODULE from the same path
  --token T          the scheduler's token, with --address (or WEFT_TOKEN)
  --json             print every event as one JSON line on stdout
  --help             show this help

Exit code: 0 when the run succeeds, 1 when it fails, 130 when it is canceled
(Ctrl-C stops running steps and their processes), 2 for bad arguments.`,
  bundle: `Usage: weft bundle MODULE...

Builds, for each code location, one file holding it and the parts of weft it
uses, and records it next to the module (node_modules/.cache/weft). weft step
then loads that file instead of the module's files one by one, while every
source it was built from is unchanged: run it where the code lives, as the
last step of an image's build (RUN npx weft bundle src/defs.ts).`,
  'queue-worker': `Usage: weft queue-worker --redis URL [--queues a,b] [--concurrency N] [--name N]

Takes steps from the named queues (default weft) on Redis, highest priority
first, and runs them in this process for the queue executor, or, when the
executor says launch: { docker } or { k8s }, in a container or a Kubernetes
Job it starts and watches. SIGTERM or Ctrl-C: takes no new step, finishes
those it runs, exits.

Options:
  --redis URL              redis://HOST:PORT/DB or rediss://... (or WEFT_REDIS)
  --queues a,b             queues to take steps from (default weft)
  --concurrency N          steps at once (default 1)
  --name NAME              worker name (default host-pid)
  --prefix P               key prefix in Redis (default weft)
  --stall-interval MS      how often dead workers' steps are looked for (default 5000)
  --lock MS                a step's lock, renewed while it runs (default 10000)
  --max-stalls N           times a step may lose its worker before it fails (default 2)
  --log-level LEVEL        (default info)`,
  queue: `Usage: weft queue status --redis URL [--queues a,b] [--json]

Per queue: waiting, active and delayed steps, and the live workers.`,
  list: `Usage: weft list MODULE [--json]

Lists the jobs (with their executors) and assets of a code location.`,
  example: `Usage: weft example [--workers 2] [--tasks 400]

Starts a local cluster, estimates pi with a graph of Monte Carlo sample tasks
and a tree reduction (showing progress), prints the result and stops.

Options:
  --workers N      worker processes (default 2)
  --tasks N        sample tasks (default 400)
  --log-level L    log level of the cluster (default warn)
  --help           show this help`,
};

const logLevel = z.enum(LOG_LEVELS);
const port = z.coerce.number().int().min(0).max(65535);
const positive = z.coerce.number().int().min(1);
const nonNegative = z.coerce.number().int().min(0);
const positiveNumber = z.coerce.number().positive();

/**
 * The shared secret: from --token-file (a file only its owner reads), else
 * WEFT_TOKEN, else --token. A token on a command line is visible to every
 * user of the machine (ps), so that one gets a warning.
 */
function tokenFrom(values: Record<string, unknown>, log?: { warn: (msg: string) => void }): string | undefined {
  const file = values['token-file'] as string | undefined;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      fail(`--token-file: cannot read ${file}: ${(err as Error).message}`);
    }
    const token = text.trim();
    if (!token) fail(`--token-file: ${file} is empty`);
    return token;
  }
  const flag = values['token'] as string | undefined;
  if (flag !== undefined) log?.warn('--token puts the token on the command line, where every user of this machine can read it (ps): prefer WEFT_TOKEN or --token-file');
  return flag ?? process.env['WEFT_TOKEN'];
}

/** The TLS files named by --tls-cert, --tls-key, --tls-ca, read (null: no TLS). */
function tlsFrom(values: Record<string, unknown>): TlsOptions | null {
  return readTls({
    cert: values['tls-cert'] as string | undefined,
    key: values['tls-key'] as string | undefined,
    ca: values['tls-ca'] as string | undefined,
    requireClientCert: values['tls-require-client-cert'] === true,
  });
}

/** --memory-limit: bytes ('4GB', '512MiB', '1e9'), 'auto' (this machine's memory), or 0 (none). */
export function memoryLimit(value: string | undefined): number {
  if (value === undefined || value === '0') return 0;
  if (value === 'auto') return totalmem();
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?$/i.exec(value.trim());
  if (!m) fail(`--memory-limit: expected a size like 4GB or 512MiB, 'auto' or 0 (got '${value}')`);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  return Math.round(Number(m[1]) * (units[(m[2] ?? 'b').toLowerCase()] as number));
}

function fail(message: string): never {
  throw new ConfigError(message);
}

function parse(argv: string[], options: ParseArgsConfig['options']): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    return { values: values as Record<string, unknown>, positionals };
  } catch (err) {
    return fail((err as Error).message);
  }
}

function check<T>(schema: z.ZodType<T>, value: unknown, flag: string): T {
  const r = schema.safeParse(value);
  if (!r.success) fail(`${flag}: ${r.error.issues[0]?.message ?? 'invalid'} (got ${JSON.stringify(value)})`);
  return r.data;
}

export function parseResources(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values.flatMap((s) => s.split(','))) {
    if (!v.trim()) continue;
    const m = /^([A-Za-z_][\w.-]*)=(\d+(?:\.\d+)?)$/.exec(v.trim());
    if (!m) fail(`--resources: expected NAME=NUMBER (like GPU=2), got '${v}'`);
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

function level(values: Record<string, unknown>, fallback: LogLevel): LogLevel {
  return check(logLevel, values['log-level'] ?? process.env['WEFT_LOG_LEVEL'] ?? fallback, '--log-level');
}

/** Runs `stop` on Ctrl-C, SIGTERM, or (for children of a LocalCluster) when the parent goes away. */
function onShutdown(log: Logger, stop: (reason: string) => Promise<void>): void {
  let stopping = false;
  const run = (reason: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    stop(reason).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  onStopSignals(run);
}


async function schedulerCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    host: { type: 'string' },
    port: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    'tls-require-client-cert': { type: 'boolean' },
    'heartbeat-timeout': { type: 'string' },
    'no-worker-timeout': { type: 'string' },
    'dashboard-port': { type: 'string' },
    'no-dashboard': { type: 'boolean' },
    'log-level': { type: 'string' },
  });
  if (values['help']) return void console.log(HELP['scheduler']);
  const log = createLogger('weft-scheduler', level(values, 'info'));
  const { SchedulerServer } = await import('../scheduler/server.ts');
  const config: Record<string, number> = {};
  if (values['heartbeat-timeout'] !== undefined) config['heartbeatTimeoutMs'] = check(positive, values['heartbeat-timeout'], '--heartbeat-timeout');
  if (values['no-worker-timeout'] !== undefined) config['noWorkerTimeoutMs'] = check(z.coerce.number().int().min(0), values['no-worker-timeout'], '--no-worker-timeout');
  const server = await SchedulerServer.start({
    host: (values['host'] as string | undefined) ?? '127.0.0.1',
    port: check(port, values['port'] ?? 8786, '--port'),
    token: tokenFrom(values, log),
    tls: tlsFrom(values),
    log,
    config,
    dashboardPort: values['no-dashboard'] ? null : check(port, values['dashboard-port'] ?? 8787, '--dashboard-port'),
  });
  console.log(JSON.stringify({ address: server.address, ...(server.dashboardUrl ? { dashboard: server.dashboardUrl } : {}) }));
  onShutdown(log, () => server.close());
}

async function workerCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    nthreads: { type: 'string' },
    resources: { type: 'string', multiple: true },
    name: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    'tls-require-client-cert': { type: 'boolean' },
    'cancel-grace': { type: 'string' },
    'contact-address': { type: 'string' },
    'no-nanny': { type: 'boolean' },
    'memory-limit': { type: 'string' },
    'scheduler-reconnect-timeout': { type: 'string' },
    'local-directory': { type: 'string' },
    'thread-heap-limit': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values['help']) return void console.log(HELP['worker']);
  const address = positionals[0] ?? fail('weft worker needs the scheduler address, e.g. weft worker ws://127.0.0.1:8786');
  if (!/^wss?:\/\//.test(address)) fail(`scheduler address must start with ws:// (got '${address}')`);
  const log = createLogger('weft-worker', level(values, 'info'));
  if (values['no-nanny'] !== true) {
    // Under a nanny (the default): this process supervises a worker started with the same arguments.
    const { runNanny } = await import('./nanny.ts');
    return runNanny(argv, createLogger('weft-nanny', level(values, 'info')));
  }
  const { WeftWorker } = await import('../worker/worker.ts');
  const worker = await WeftWorker.start({
    scheduler: address,
    nthreads: check(positive, values['nthreads'] ?? 1, '--nthreads'),
    resources: parseResources((values['resources'] as string[] | undefined) ?? []),
    name: values['name'] as string | undefined,
    host: (values['host'] as string | undefined) ?? '127.0.0.1',
    port: check(port, values['port'] ?? 0, '--port'),
    token: tokenFrom(values, log),
    tls: tlsFrom(values),
    contactAddress: values['contact-address'] as string | undefined,
    cancelGraceMs: check(positiveNumber, values['cancel-grace'] ?? 3, '--cancel-grace') * 1000,
    memoryLimit: memoryLimit(values['memory-limit'] as string | undefined),
    schedulerReconnectMs: check(z.coerce.number().min(0), values['scheduler-reconnect-timeout'] ?? 30, '--scheduler-reconnect-timeout') * 1000,
    ...(values['local-directory'] !== undefined ? { localDirectory: values['local-directory'] as string } : {}),
    threadHeapLimitMb: check(nonNegative, values['thread-heap-limit'] ?? 0, '--thread-heap-limit'),
    log,
  });
  console.log(JSON.stringify({ address: worker.address, name: worker.name }));
  onShutdown(log, () => worker.close('signal'));
  const reason = await worker.closed;
  log.info({ reason }, 'worker stopped');
  process.exit(worker.exitCode);
}

async function clusterCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    workers: { type: 'string' },
    'threads-per-worker': { type: 'string' },
    port: { type: 'string' },
    'dashboard-port': { type: 'string' },
    'no-dashboard': { type: 'boolean' },
    resources: { type: 'string', multiple: true },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values['help']) return void console.log(HELP['cluster']);
  const log = createLogger('weft-cluster', 'info');
  const { LocalCluster } = await import('../cluster/local-cluster.ts');
  const resources = parseResources((values['resources'] as string[] | undefined) ?? []);
  const token = tokenFrom(values, log);
  const cluster = await LocalCluster.start({
    workers: check(positive, values['workers'] ?? 2, '--workers'),
    threadsPerWorker: check(positive, values['threads-per-worker'] ?? 1, '--threads-per-worker'),
    port: check(port, values['port'] ?? 8786, '--port'),
    dashboardPort: values['no-dashboard'] ? null : check(port, values['dashboard-port'] ?? 8787, '--dashboard-port'),
    ...(Object.keys(resources).length > 0 ? { resources } : {}),
    ...(token ? { token } : {}),
    logLevel: level(values, 'warn'),
  });
  console.log(`weft cluster ready at ${cluster.address} with ${cluster.workers.length} workers${cluster.dashboardUrl ? `; dashboard at ${cluster.dashboardUrl}/status` : ''} (Ctrl-C to stop)`);
  console.log(JSON.stringify({ address: cluster.address, ...(cluster.dashboardUrl ? { dashboard: cluster.dashboardUrl } : {}), pids: [process.pid, cluster.schedulerPid, ...cluster.workers.map((w) => w.pid)] }));
  onShutdown(log, () => cluster.close());
}

async function exampleCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, { workers: { type: 'string' }, tasks: { type: 'string' }, 'log-level': { type: 'string' } });
  if (values['help']) return void console.log(HELP['example']);
  const { runExample } = await import('./example.ts');
  await runExample({
    workers: check(positive, values['workers'] ?? 2, '--workers'),
    tasks: check(positive, values['tasks'] ?? 400, '--tasks'),
    logLevel: level(values, 'warn'),
  });
}

async function runCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { job: { type: 'string' }, config: { type: 'string' }, json: { type: 'boolean' }, address: { type: 'string' }, token: { type: 'string' } });
  if (values['help']) return void console.log(HELP['run']);
  const module = positionals[0] ?? fail('weft run needs a module, e.g. weft run ./defs.ts --job my_job');
  const job = (values['job'] as string | undefined) ?? fail('weft run needs --job NAME (weft list MODULE shows the jobs)');
  const address = values['address'] as string | undefined;
  if (address !== undefined && !/^wss?:\/\/\S+$/.test(address)) fail(`--address must be a scheduler address like ws://127.0.0.1:8786 (got '${address}')`);
  const token = (values['token'] as string | undefined) ?? process.env['WEFT_TOKEN'];
  if (values['token'] !== undefined && address === undefined) fail('--token goes with --address');
  const { runJobCommand } = await import('./run-job.ts');
  process.exitCode = await runJobCommand({ module, job, configFile: values['config'] as string | undefined, json: values['json'] === true, ...(address ? { cluster: { address, ...(token ? { token } : {}) } } : {}) });
}

async function stepCommand(argv: string[]): Promise<void> {
  const { runStepCommand } = await import('./step-command.ts');
  await runStepCommand(argv);
}

async function bundleCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {});
  if (values['help']) return void console.log(HELP['bundle']);
  if (positionals.length === 0) fail('weft bundle needs a module, e.g. weft bundle ./defs.ts');
  const [{ buildLocationBundle }, { moduleUrl }] = await Promise.all([import('../jobs/step/bundle.ts'), import('../jobs/location.ts')]);
  for (const m of positionals) console.log(await buildLocationBundle(moduleUrl(m)));
}

async function queueWorkerCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    redis: { type: 'string' },
    queues: { type: 'string' },
    concurrency: { type: 'string' },
    name: { type: 'string' },
    prefix: { type: 'string' },
    'stall-interval': { type: 'string' },
    lock: { type: 'string' },
    'max-stalls': { type: 'string' },
    'log-level': { type: 'string' },
  });
  if (values['help']) return void console.log(HELP['queue-worker']);
  const redis = (values['redis'] as string | undefined) ?? process.env['WEFT_REDIS'] ?? fail('weft queue-worker needs --redis redis://HOST:PORT/DB');
  if (!/^rediss?:\/\/\S+$/.test(redis)) fail(`--redis must look like redis://HOST:PORT/DB (got '${redis}')`);
  const queues = ((values['queues'] as string | undefined) ?? 'weft').split(',').map((q) => q.trim()).filter(Boolean);
  const log = createLogger('weft-queue-worker', level(values, 'info'));
  const name = (values['name'] as string | undefined) ?? `${(await import('node:os')).hostname()}-${process.pid}`;
  const { QueueWorker } = await import('../jobs/queue/worker.ts');
  const worker = await QueueWorker.start({
    redis,
    queues,
    concurrency: check(positive, values['concurrency'] ?? 1, '--concurrency'),
    name,
    ...(values['prefix'] ? { prefix: values['prefix'] as string } : {}),
    ...(values['stall-interval'] ? { stallIntervalMs: check(positive, values['stall-interval'], '--stall-interval') } : {}),
    ...(values['lock'] ? { lockMs: check(positive, values['lock'], '--lock') } : {}),
    ...(values['max-stalls'] ? { maxStalls: check(z.coerce.number().int().min(0), values['max-stalls'], '--max-stalls') } : {}),
    log,
  });
  console.log(JSON.stringify({ name, queues, pid: process.pid }));
  onShutdown(log, () => worker.close());
}

async function queueCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'status') return void console.log(HELP['queue']);
  const { values } = parse(rest, { redis: { type: 'string' }, queues: { type: 'string' }, prefix: { type: 'string' }, json: { type: 'boolean' } });
  if (values['help']) return void console.log(HELP['queue']);
  const redis = (values['redis'] as string | undefined) ?? process.env['WEFT_REDIS'] ?? fail('weft queue status needs --redis redis://HOST:PORT/DB');
  const { queueStatus } = await import('../jobs/queue/status.ts');
  const status = await queueStatus(redis, (values['prefix'] as string | undefined) ?? 'weft', values['queues'] ? (values['queues'] as string).split(',') : null);
  if (values['json']) return void console.log(JSON.stringify(status));
  for (const q of status.queues) {
    console.log(`${q.name.padEnd(20)} waiting ${String(q.waiting).padStart(5)}  active ${String(q.active).padStart(5)}  delayed ${String(q.delayed).padStart(5)}  workers: ${q.workers.join(', ') || 'none'}`);
  }
  if (status.queues.length === 0) console.log('(no queues)');
}

async function listJobsCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  if (values['help']) return void console.log(HELP['list']);
  const module = positionals[0] ?? fail('weft list needs a module, e.g. weft list ./defs.ts');
  const { listCommand } = await import('./run-job.ts');
  await listCommand(module, values['json'] === true);
}

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  run: runCommand,
  list: listJobsCommand,
  step: stepCommand,
  bundle: bundleCommand,
  'queue-worker': queueWorkerCommand,
  queue: queueCommand,
  scheduler: schedulerCommand,
  worker: workerCommand,
  cluster: clusterCommand,
  example: exampleCommand,
};

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(HELP['main']);
    return;
  }
  const run = COMMANDS[cmd];
  if (!run) fail(`unknown command '${cmd}'. Commands: ${Object.keys(COMMANDS).join(', ')}. See weft --help.`);
  await run(rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || (err instanceof Error && (err.name === 'RunConfigError' || err.name === 'DefinitionError'))) {
    process.stderr.write(`weft: ${err.message}\n`);
    process.exit(2);
  }
  const e = err as Error;
  process.stderr.write(`weft: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
