/**
 * The `weft` commands, each declared once with its flags and their help
 * (args.ts builds the parser and the help text from the declaration).
 */
import { readFileSync } from 'node:fs';
import { onOutputClosed, onStopSignals } from './stop-signals.ts';
import { createLogger, type Logger } from '../util/log.ts';
import { packageFile } from '../util/self.ts';
import { duration, DURATIONS_NOTE, fail, flag, HOST_FLAG, level, memoryLimit, ORIGIN_FLAG, repeated, nonNegativeInt, port, positiveInt, resources, str, TLS_FLAGS, tls, token, type Args, type Command, type Flag } from './args.ts';

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

/** The log level of a command, also passed to the processes it starts (step processes, a local cluster's). */
function logLevelOf(args: Args, fallback: Parameters<typeof level>[1]): ReturnType<typeof level> {
  const l = level(args, fallback);
  process.env['WEFT_LOG_LEVEL'] = l;
  return l;
}

/** The queue commands' way to Redis. */
/** Dask's dashboard port, weft's too. */
const DASHBOARD_PORT = 8787;
const REDIS_FLAG: Flag = { name: 'redis', arg: 'URL', help: 'redis://HOST:PORT/DB or rediss://... (or WEFT_REDIS)' };
const PREFIX_FLAG: Flag = { name: 'prefix', arg: 'P', help: 'key prefix in Redis (default weft)' };

const scheduler: Command = {
  name: 'scheduler',
  summary: 'start a scheduler',
  usage: '[--host 127.0.0.1] [--port 8786] [--token-file FILE]',
  connects: true,
  flags: [
    { name: 'host', arg: 'HOST', help: 'interface to bind (default 127.0.0.1; any other needs a token)' },
    { name: 'port', arg: 'PORT', help: 'port (default 8786; 0 picks a free one)' },
    { name: 'heartbeat-timeout', arg: 'DURATION', help: 'remove a worker silent this long (default 15s)' },
    { name: 'allowed-failures', arg: 'N', help: 'fail a task that was running on N workers that died (default 3), as\nDask\'s allowed-failures' },
    { name: 'no-worker-timeout', arg: 'DURATION', help: 'err a task no worker can run after this long (default 30s)' },
    { name: 'no-work-stealing', help: 'never move tasks queued on a busy worker to an idle one (work stealing is\non by default, as Dask\'s)' },
    { name: 'forget-functions-after', arg: 'DURATION', help: 'a task function no task refers to is forgotten, here and on the workers,\nafter this long (default 60s; sooner past 64 MiB of such functions)' },
    { name: 'dashboard-port', arg: 'PORT', help: 'HTTP port of the dashboard (/status, /workers, /tasks, /runs: the runs\nrecorded in WEFT_HOME), /health, /metrics (Prometheus) and /api/v1\n(default 8787, or a free one when 8787 is taken; 0 picks a free one);\nwith a token, it wants it too' },
    { name: 'no-dashboard', help: 'serve no HTTP port' },
    HOST_FLAG,
    ORIGIN_FLAG,
    ...TLS_FLAGS,
  ],
  footer: `The token (--token-file or WEFT_TOKEN) is required from clients and workers; off loopback
it must be at least 16 characters. ${DURATIONS_NOTE}
Prints {"address": "ws://HOST:PORT", "dashboard": "http://HOST:PORT"} on stdout once listening.`,
  async run(args) {
    const log = createLogger('weft-scheduler', logLevelOf(args, 'info'));
    const [{ SchedulerServer }, { instanceRunsSource }] = await Promise.all([import('../scheduler/server.ts'), import('../runs/dashboard-source.ts')]);
    // The runs pages read the instance in WEFT_HOME, opened when a runs page first asks.
    const runs = flag(args, 'no-dashboard') ? null : instanceRunsSource();
    const server = await SchedulerServer.start({
      host: str(args, 'host') ?? '127.0.0.1',
      port: port(args, 'port', 8786),
      token: token(args, log),
      tls: tls(args),
      log,
      config: { heartbeatTimeoutMs: duration(args, 'heartbeat-timeout', 15_000, { min: 1 }), allowedFailures: positiveInt(args, 'allowed-failures', 3), noWorkerTimeoutMs: duration(args, 'no-worker-timeout', 30_000), forgetFunctionsAfterMs: duration(args, 'forget-functions-after', 60_000), stealing: !flag(args, 'no-work-stealing') },
      dashboardPort: flag(args, 'no-dashboard') ? null : port(args, 'dashboard-port', DASHBOARD_PORT),
      // Not given: the default, or a free port when another cluster holds it (as Dask does).
      dashboardFallback: str(args, 'dashboard-port') === undefined,
      allowOrigins: repeated(args, 'allow-origin'),
      allowHosts: repeated(args, 'allow-host'),
      runs,
    });
    console.log(JSON.stringify({ address: server.address, ...(server.dashboardUrl ? { dashboard: server.dashboardUrl } : {}) }));
    onShutdown(log, async () => {
      await server.close();
      await runs?.close();
    });
  },
};

const worker: Command = {
  name: 'worker',
  summary: 'start a worker that joins the scheduler at ADDRESS',
  usage: 'ws://HOST:PORT [--nthreads N] [--resources GPU=1] [--name NAME] [--token-file FILE]',
  connects: true,
  flags: [
    { name: 'nthreads', arg: 'N', help: 'tasks run at once, each on its own thread (default 1)' },
    { name: 'resources', arg: 'R=N', multiple: true, help: 'abstract resources this worker offers, e.g. GPU=2 (repeatable, or comma-separated)' },
    { name: 'name', arg: 'NAME', help: 'worker name (default host-pid-port)' },
    { name: 'host', arg: 'HOST', help: "interface for this worker's data server (default 127.0.0.1; any other needs a token)" },
    { name: 'port', arg: 'PORT', help: 'port for the data server (default 0: any free port)' },
    { name: 'contact-address', arg: 'ws://HOST:PORT', help: "where peers and clients reach this worker (default: the bound address;\nbound to 0.0.0.0, this machine's first external IPv4 address)" },
    ORIGIN_FLAG,
    { name: 'cancel-grace', arg: 'DURATION', help: 'a task cancelled while running and still running this long later ends\nwith its thread, which is replaced (default 3s)' },
    ...TLS_FLAGS,
    { name: 'memory-limit', arg: 'SIZE', help: "e.g. 4GB, 'auto' (this machine's memory) or 0 (default: none): results held\npast 60% of it spill to disk, past 80% of process memory no task starts,\npast 95% the worker stops (its nanny starts a fresh one)" },
    { name: 'local-directory', arg: 'DIR', help: "where spilled results go (default: the system's temporary directory)" },
    { name: 'paused-timeout', arg: 'DURATION', help: 'paused with nowhere to spill (its disk full) this long, the worker fails\nthe tasks waiting to start on it, saying why (default 30s)' },
    { name: 'scheduler-reconnect-timeout', arg: 'DURATION', help: 'after losing the scheduler (not told to stop), try to connect again\nfor this long (default 30s; 0: stop at once), keeping the results held' },
    { name: 'no-nanny', help: 'run the worker in this process; by default a small supervisor (the nanny)\nruns it and starts it again when it dies: at once if it had run, after a\nback-off if it died before joining its scheduler (or within 2s of it)' },
    { name: 'restart-backoff', arg: 'DURATION', help: 'the nanny\'s first wait before starting again a worker that died starting;\ndoubling while it keeps doing so (default 1s)' },
    { name: 'max-restart-backoff', arg: 'DURATION', help: 'the longest such wait (default 30s); it starts over once a worker has\nbeen up for 60s' },
    { name: 'crash-loop-window', arg: 'DURATION', help: 'a worker that dies before joining its scheduler, or within this long of\njoining, is crash-looping: the nanny waits before the next (default 2s)' },
    { name: 'startup-timeout', arg: 'DURATION', help: 'a worker not joined to its scheduler this long after its nanny started\nit is killed and started again (default 60s)' },
    { name: 'thread-heap-limit', arg: 'MB', help: "heap limit of each executor thread; a task exceeding it fails alone\n(default: V8's)" },
  ],
  footer: `Relative task modules ('./tasks.ts#fn') resolve against the worker's working directory.
${DURATIONS_NOTE}
Prints {"address": ..., "name": ...} on stdout once it has joined.`,
  async run(args) {
    const address = args.positionals[0] ?? fail('weft worker needs the scheduler address, e.g. weft worker ws://127.0.0.1:8786');
    if (!/^wss?:\/\//.test(address)) fail(`scheduler address must start with ws:// or wss:// (got '${address}')`);
    const lvl = logLevelOf(args, 'info');
    const log = createLogger('weft-worker', lvl);
    if (!flag(args, 'no-nanny')) {
      // Under a nanny (the default): this process supervises a worker started with the same arguments.
      const { runNanny, NANNY_DEFAULTS } = await import('./nanny.ts');
      const times = {
        ...NANNY_DEFAULTS,
        firstBackoffMs: duration(args, 'restart-backoff', NANNY_DEFAULTS.firstBackoffMs),
        maxBackoffMs: duration(args, 'max-restart-backoff', NANNY_DEFAULTS.maxBackoffMs),
        youngMs: duration(args, 'crash-loop-window', NANNY_DEFAULTS.youngMs),
        startupTimeoutMs: duration(args, 'startup-timeout', NANNY_DEFAULTS.startupTimeoutMs, { min: 1 }),
      };
      return runNanny(args.argv, createLogger('weft-nanny', lvl), times);
    }
    const [{ WeftWorker }, { describeReload, followUserModules }] = await Promise.all([import('../worker/worker.ts'), import('../util/user-modules.ts')]);
    // Modules of functions run here (client.run) are followed too; the executor threads follow their own.
    followUserModules((r) => log.info(describeReload(r, 'module')));
    const w = await WeftWorker.start({
      scheduler: address,
      nthreads: positiveInt(args, 'nthreads', 1),
      resources: resources(args),
      name: str(args, 'name'),
      host: str(args, 'host') ?? '127.0.0.1',
      port: port(args, 'port', 0),
      token: token(args, log),
      tls: tls(args),
      contactAddress: str(args, 'contact-address'),
      cancelGraceMs: duration(args, 'cancel-grace', 3000, { min: 1 }),
      memoryLimit: memoryLimit(str(args, 'memory-limit')),
      schedulerReconnectMs: duration(args, 'scheduler-reconnect-timeout', 30_000),
      pausedTimeoutMs: duration(args, 'paused-timeout', 30_000),
      ...(str(args, 'local-directory') !== undefined ? { localDirectory: str(args, 'local-directory') as string } : {}),
      threadHeapLimitMb: nonNegativeInt(args, 'thread-heap-limit', 0),
      allowOrigins: repeated(args, 'allow-origin'),
      log,
    });
    console.log(JSON.stringify({ address: w.address, name: w.name }));
    onShutdown(log, () => w.close('signal'));
    const reason = await w.closed;
    log.info({ reason }, 'worker stopped');
    process.exit(w.exitCode);
  },
};

const cluster: Command = {
  name: 'cluster',
  summary: 'start a development cluster (scheduler + workers) on loopback',
  usage: '[--workers 2] [--threads-per-worker 1] [--port 8786] [--dashboard-port 8787 | --no-dashboard] [--adapt MIN:MAX]',
  about: "Starts a scheduler and worker processes on 127.0.0.1 and prints the scheduler's\naddress and its dashboard's; Ctrl-C stops them all.",
  connects: true,
  logLevel: 'warn',
  flags: [
    { name: 'workers', arg: 'N', help: 'worker processes (default 2)' },
    { name: 'threads-per-worker', arg: 'N', help: 'threads per worker (default 1)' },
    { name: 'port', arg: 'PORT', help: 'scheduler port (default 8786; 0 picks a free one)' },
    { name: 'dashboard-port', arg: 'PORT', help: "the dashboard's HTTP port (default 8787, or a free one when 8787 is taken;\n0 picks a free one)" },
    { name: 'no-dashboard', help: 'serve no dashboard' },
    { name: 'resources', arg: 'R=N', multiple: true, help: 'resources every worker offers (repeatable)' },
    { name: 'adapt', arg: 'MIN:MAX', help: 'start and retire workers as the work asks, between MIN and MAX (as Dask\'s\nadapt: about 5s of work per thread; results of retired workers are kept)' },
    HOST_FLAG,
    ORIGIN_FLAG,
  ],
  async run(args) {
    const lvl = logLevelOf(args, 'warn');
    const log = createLogger('weft-cluster', lvl);
    const adapt = str(args, 'adapt');
    const range = adapt === undefined ? null : /^(\d+):(\d+)$/.exec(adapt);
    if (adapt !== undefined && (!range || Number(range[1]) > Number(range[2]))) fail(`--adapt takes MIN:MAX, two whole numbers with MIN <= MAX (got ${JSON.stringify(adapt.slice(0, 40))})`);
    const { LocalCluster } = await import('../cluster/local-cluster.ts');
    const res = resources(args);
    const tok = token(args, log);
    const c = await LocalCluster.start({
      workers: positiveInt(args, 'workers', 2),
      threadsPerWorker: positiveInt(args, 'threads-per-worker', 1),
      port: port(args, 'port', 8786),
      dashboardPort: flag(args, 'no-dashboard') ? null : str(args, 'dashboard-port') === undefined ? 'default' : port(args, 'dashboard-port', DASHBOARD_PORT),
      ...(Object.keys(res).length > 0 ? { resources: res } : {}),
      ...(tok ? { token: tok } : {}),
      logLevel: lvl,
      allowOrigins: repeated(args, 'allow-origin'),
      allowHosts: repeated(args, 'allow-host'),
    });
    if (range) c.adapt({ minimum: Number(range[1]), maximum: Number(range[2]) });
    console.log(`weft cluster ready at ${c.address} with ${c.workers.length} workers${range ? ` (adapting between ${range[1]} and ${range[2]})` : ''}${c.dashboardUrl ? `; dashboard at ${c.dashboardUrl}/status` : ''} (Ctrl-C to stop)`);
    console.log(JSON.stringify({ address: c.address, ...(c.dashboardUrl ? { dashboard: c.dashboardUrl } : {}), pids: [process.pid, c.schedulerPid, ...c.workers.map((w) => w.pid)] }));
    onShutdown(log, () => c.close());
  },
};

const example: Command = {
  name: 'example',
  summary: 'start a local cluster, run an example graph, print the result',
  usage: '[--workers 2] [--tasks 400]',
  about: 'Starts a local cluster, estimates pi with a graph of Monte Carlo sample tasks\nand a tree reduction (showing progress), prints the result and stops.',
  logLevel: 'warn',
  flags: [
    { name: 'workers', arg: 'N', help: 'worker processes (default 2)' },
    { name: 'tasks', arg: 'N', help: 'sample tasks (default 400)' },
  ],
  async run(args) {
    const { runExample } = await import('./example.ts');
    await runExample({ workers: positiveInt(args, 'workers', 2), tasks: positiveInt(args, 'tasks', 400), logLevel: logLevelOf(args, 'warn') });
  },
};

const EXIT_CODES = `Exit code: 0 when the run succeeds, 1 when it fails, 130 when it is canceled
(Ctrl-C stops running steps and their processes), 2 for bad arguments.`;

const run: Command = {
  name: 'run',
  summary: 'run a job of a code location with its executor',
  usage: 'MODULE --job NAME [--config run.json] [--address ws://HOST:PORT] [--json]',
  about: 'Runs a job of a code location (a module whose default export is a\nDefinitions object) with the job\'s executor. On a terminal it shows live\nstep counts; otherwise it prints one line per event.',
  connects: true,
  logLevel: 'debug',
  flags: [
    { name: 'job', arg: 'NAME', help: 'the job to run (see weft list MODULE)' },
    { name: 'config', arg: 'FILE', help: 'run config as JSON: { "ops": { NAME: { "config": ... } }, "execution": { "config": ... } }' },
    { name: 'address', arg: 'ws://HOST:PORT', help: 'run the steps on the weft cluster whose scheduler is there (the cluster\nexecutor, whatever executor the job names); its workers import MODULE\nfrom the same path. Its token: --token-file or WEFT_TOKEN' },
    { name: 'tag', arg: 'KEY=VALUE', multiple: true, help: 'a tag of the run, over the job\'s (repeatable)' },
    { name: 'op-selection', arg: 'SEL', help: "run only these steps, in Dagster's syntax: '*c,a+' (inputs from steps left\nout come from the run config's ops.OP.inputs)" },
    { name: 'json', help: 'print every event as one JSON line on stdout' },
  ],
  footer: `The run is recorded in the instance in WEFT_HOME (default ~/.weft): weft runs
lists it, and can re-execute it from failure.
--log-level: step LOG events below the level are not shown; also weft's own logs.
${EXIT_CODES}`,
  async run(args) {
    const module = args.positionals[0] ?? fail('weft run needs a module, e.g. weft run ./defs.ts --job my_job');
    const job = str(args, 'job') ?? fail('weft run needs --job NAME (weft list MODULE shows the jobs)');
    const address = str(args, 'address');
    if (address !== undefined && !/^wss?:\/\/\S+$/.test(address)) fail(`--address must be a scheduler address like ws://127.0.0.1:8786 (got '${address}')`);
    const lvl = logLevelOf(args, 'debug');
    const tok = token(args, createLogger('weft-run', lvl));
    if ((str(args, 'token') !== undefined || str(args, 'token-file') !== undefined) && address === undefined) fail('--token-file goes with --address');
    const { runJobCommand } = await import('./run-job.ts');
    const { parseTags } = await import('./runs-command.ts');
    process.exitCode = await runJobCommand({ module, job, configFile: str(args, 'config'), json: flag(args, 'json'), logLevel: lvl, tags: parseTags(repeated(args, 'tag')), ...(str(args, 'op-selection') !== undefined ? { opSelection: (str(args, 'op-selection') as string).split(',') } : {}), ...(address ? { cluster: { address, ...(tok ? { token: tok } : {}) } } : {}) });
  },
};

const RUNS_SUBCOMMANDS = ['list', 'show', 'logs', 'cancel', 'delete', 'reexecute', 'submit', 'launch'] as const;

const runs: Command = {
  name: 'runs',
  summary: 'the recorded runs: list, show, logs, cancel, delete, reexecute, submit',
  usage: 'list|show|logs|cancel|delete|reexecute|submit ...',
  about: `The runs of the instance in WEFT_HOME (default ~/.weft), on every executor:
  weft runs list [--status FAILURE,STARTED] [--job NAME] [--tag K=V] [--limit 50] [--json]
  weft runs show RUN [--json]          the run and each step's status and time
  weft runs logs RUN [--follow]        its events (--follow: until the run ends)
  weft runs cancel RUN                 a queued run at once; a running one via its launcher
  weft runs delete RUN [--force]       the run, its events and its stored outputs
  weft runs reexecute RUN --from-failure | --steps SELECTION
                                       SELECTION as Dagster's: 'c', '*c', 'b+', 'a,b'
  weft runs submit MODULE --job NAME [--config run.json] [--tag K=V]
                                       queue a run; weft daemon starts it
RUN is a run id, or a unique start of one (at least 4 characters).`,
  logLevel: 'warn',
  flags: [
    { name: 'status', arg: 'S,S', help: 'list: only runs with these statuses (QUEUED, STARTING, STARTED, SUCCESS,\nFAILURE, CANCELING, CANCELED)' },
    { name: 'job', arg: 'NAME', help: 'list: only runs of this job; submit: the job to queue' },
    { name: 'tag', arg: 'KEY=VALUE', multiple: true, help: 'list: only runs with this tag; submit, reexecute: a tag of the new run\n(repeatable)' },
    { name: 'limit', arg: 'N', help: 'list: at most N runs, newest first (default 50)' },
    { name: 'follow', help: 'logs: go on printing events until the run ends' },
    { name: 'force', help: 'delete: even a run that is under way' },
    { name: 'from-failure', help: 'reexecute: the failed, interrupted and never-run steps and all after them' },
    { name: 'steps', arg: 'SELECTION', help: 'reexecute: these steps; their other inputs load from the runs before' },
    { name: 'config', arg: 'FILE', help: 'submit: run config as JSON' },
    { name: 'json', help: 'print JSON: list, an array of runs; show, one run; logs and reexecute,\none event per line' },
  ],
  footer: EXIT_CODES.replace('Exit code:', 'reexecute exit code:'),
  async run(args) {
    const [sub, target] = args.positionals;
    if (!(RUNS_SUBCOMMANDS as readonly (string | undefined)[]).includes(sub)) fail(`weft runs: expected one of ${RUNS_SUBCOMMANDS.slice(0, -1).join(', ')} (got ${sub === undefined ? 'nothing' : `'${sub}'`}). See weft runs --help.`);
    const lvl = logLevelOf(args, 'warn');
    const needRun = (): string => target ?? fail(`weft runs ${sub} needs a run id (weft runs list shows them)`);
    const [cmd, { Instance }] = await Promise.all([import('./runs-command.ts'), import('../runs/instance.ts')]);
    const instance = await Instance.open();
    const json = flag(args, 'json');
    try {
      switch (sub) {
        case 'list':
          return await cmd.listRuns(instance, { statuses: cmd.parseStatuses(str(args, 'status')), ...(str(args, 'job') !== undefined ? { job: str(args, 'job') as string } : {}), tags: cmd.parseTags(repeated(args, 'tag')), limit: positiveInt(args, 'limit', 50), json });
        case 'show':
          return await cmd.showRunRecord(instance, needRun(), json);
        case 'logs': {
          const controller = new AbortController();
          const stop = (): void => controller.abort();
          process.once('SIGINT', stop);
          onOutputClosed(stop);
          try {
            return await cmd.printLogs(instance, needRun(), { follow: flag(args, 'follow'), json, signal: controller.signal });
          } finally {
            process.off('SIGINT', stop);
          }
        }
        case 'cancel':
          return await cmd.cancelCommand(instance, needRun());
        case 'delete':
          return await cmd.deleteCommand(instance, needRun(), flag(args, 'force'));
        case 'reexecute':
          process.exitCode = await cmd.reexecuteCommand(instance, needRun(), { json, logLevel: lvl, fromFailure: flag(args, 'from-failure'), steps: str(args, 'steps'), tags: cmd.parseTags(repeated(args, 'tag')) });
          return;
        case 'submit': {
          const module = target ?? fail('weft runs submit needs a module, e.g. weft runs submit ./defs.ts --job my_job');
          const job = str(args, 'job') ?? fail('weft runs submit needs --job NAME (weft list MODULE shows the jobs)');
          return await cmd.submitCommand(instance, { module, job, configFile: str(args, 'config'), tags: cmd.parseTags(repeated(args, 'tag')), json });
        }
        case 'launch':
          process.exitCode = await cmd.launchCommand(instance, needRun(), { json, logLevel: lvl });
          return;
      }
    } finally {
      await instance.close();
    }
  },
};

const daemon: Command = {
  name: 'daemon',
  summary: 'start queued runs under the run queue\'s limits, and fail runs whose launcher died',
  usage: '',
  about: `Every runQueue.dequeueInterval (weft.yaml in WEFT_HOME; default 1s): fails the
runs whose launcher stopped its heartbeat (runMonitor.heartbeatTimeout,
default 60s), then starts queued runs (weft runs submit), higher
weft/run-priority first, under runQueue.maxConcurrentRuns (default 10) and
tagConcurrencyLimits, each in a process of its own. Ctrl-C or SIGTERM
cancels the runs it started and waits for them.`,
  flags: [],
  async run(args) {
    const log = createLogger('weft-daemon', logLevelOf(args, 'info'));
    const [{ Instance }, { RunDaemon }] = await Promise.all([import('../runs/instance.ts'), import('../runs/daemon.ts')]);
    const instance = await Instance.open();
    const d = new RunDaemon(instance, log);
    d.start();
    log.info({ home: instance.home, storage: instance.storage.where, maxConcurrentRuns: instance.config.runQueue.maxConcurrentRuns }, 'the daemon is running');
    console.log(JSON.stringify({ home: instance.home, pid: process.pid }));
    onShutdown(log, async () => {
      await d.stop();
      await instance.close();
    });
  },
};

const list: Command = {
  name: 'list',
  summary: 'list the jobs and assets of a code location',
  usage: 'MODULE [--json]',
  about: 'Lists the jobs (with their executors) and assets of a code location.',
  flags: [{ name: 'json', help: 'print them as one JSON object' }],
  async run(args) {
    logLevelOf(args, 'info');
    const module = args.positionals[0] ?? fail('weft list needs a module, e.g. weft list ./defs.ts');
    const { listCommand } = await import('./run-job.ts');
    await listCommand(module, flag(args, 'json'));
  },
};

const bundle: Command = {
  name: 'bundle',
  summary: 'prebuild code locations for weft step (in an image\'s build; needs esbuild)',
  usage: 'MODULE...',
  about: `Builds, for each code location, one file holding it and the parts of weft it
uses, and records it next to the module (node_modules/.cache/weft). weft step
then loads that file instead of the module's files one by one, while every
source it was built from is unchanged: run it where the code lives, as the
last step of an image's build (RUN npx weft bundle src/defs.ts).`,
  flags: [],
  async run(args) {
    logLevelOf(args, 'info');
    if (args.positionals.length === 0) fail('weft bundle needs a module, e.g. weft bundle ./defs.ts');
    const [{ buildLocationBundle }, { moduleUrl }] = await Promise.all([import('../jobs/step/bundle.ts'), import('../jobs/location.ts')]);
    for (const m of args.positionals) console.log(await buildLocationBundle(moduleUrl(m)));
  },
};

const queueWorker: Command = {
  name: 'queue-worker',
  summary: "take steps from queues on Redis and run them (the queue executor's workers)",
  usage: '--redis URL [--queues a,b] [--concurrency N] [--name NAME]',
  about: `Takes steps from the named queues (default weft) on Redis, highest priority
first, and runs them in this process for the queue executor, or, when the
executor says launch: { docker } or { k8s }, in a container or a Kubernetes
Job it starts and watches. SIGTERM or Ctrl-C: takes no new step, finishes
those it runs, exits.`,
  flags: [
    REDIS_FLAG,
    { name: 'queues', arg: 'a,b', help: 'queues to take steps from (default weft)' },
    { name: 'concurrency', arg: 'N', help: 'steps at once (default 1)' },
    { name: 'name', arg: 'NAME', help: 'worker name, as weft queue status shows it (default host-pid)' },
    PREFIX_FLAG,
    { name: 'stall-interval', arg: 'DURATION', help: "how often dead workers' steps are looked for (default 5s)" },
    { name: 'lock', arg: 'DURATION', help: "a step's lock, renewed while it runs (default 10s)" },
    { name: 'max-stalls', arg: 'N', help: 'times a step may lose its worker before it fails (default 2)' },
    { name: 'code-root', arg: 'DIR', help: "run only steps whose code location is a file in DIR (default: the working\ndirectory): anyone who can write to Redis can queue a job" },
    { name: 'allow-mount', arg: 'PATH', multiple: true, help: 'a host path (and what is below it) a launched step may mount (repeatable;\nnone by default)' },
    { name: 'trust-launch-options', help: "take every launch option a job names (privileged containers, any host\nmount, pod specs, kubeconfig): only for a Redis that only trusted writers reach" },
  ],
  footer: DURATIONS_NOTE,
  async run(args) {
    const redis = str(args, 'redis') ?? process.env['WEFT_REDIS'] ?? fail('weft queue-worker needs --redis redis://HOST:PORT/DB');
    if (!/^rediss?:\/\/\S+$/.test(redis)) fail(`--redis must look like redis://HOST:PORT/DB (got '${redis}')`);
    const queues = (str(args, 'queues') ?? 'weft').split(',').map((q) => q.trim()).filter(Boolean);
    const log = createLogger('weft-queue-worker', logLevelOf(args, 'info'));
    const name = str(args, 'name') ?? `${(await import('node:os')).hostname()}-${process.pid}`;
    const [{ QueueWorker }, { describeReload, followUserModules }] = await Promise.all([import('../jobs/queue/worker.ts'), import('../util/user-modules.ts')]);
    // A code location edited while the worker runs: the steps it takes after the edit run the new code.
    followUserModules((r) => log.info(describeReload(r, 'code location')));
    const w = await QueueWorker.start({
      redis,
      queues,
      concurrency: positiveInt(args, 'concurrency', 1),
      name,
      ...(str(args, 'prefix') ? { prefix: str(args, 'prefix') as string } : {}),
      stallIntervalMs: duration(args, 'stall-interval', 5000, { min: 1 }),
      lockMs: duration(args, 'lock', 10_000, { min: 1 }),
      maxStalls: nonNegativeInt(args, 'max-stalls', 2),
      policy: { codeRoot: str(args, 'code-root') ?? process.cwd(), mounts: repeated(args, 'allow-mount'), trustLaunchOptions: flag(args, 'trust-launch-options') },
      log,
    });
    console.log(JSON.stringify({ name, queues, pid: process.pid }));
    onShutdown(log, () => w.close());
  },
};

const queue: Command = {
  name: 'queue',
  summary: 'queue status: waiting, active and delayed steps per queue, and the live workers',
  usage: 'status --redis URL [--queues a,b] [--json]',
  about: 'Per queue: waiting, active and delayed steps, and the live workers by name.',
  flags: [
    REDIS_FLAG,
    { name: 'queues', arg: 'a,b', help: 'only these queues (default: every queue with the prefix)' },
    PREFIX_FLAG,
    { name: 'json', help: 'print the status as one JSON object' },
  ],
  async run(args) {
    const [sub] = args.positionals;
    if (sub !== 'status') fail(`weft queue: expected 'weft queue status' (got ${sub === undefined ? 'nothing' : `'${sub}'`}). See weft queue --help.`);
    logLevelOf(args, 'info');
    const redis = str(args, 'redis') ?? process.env['WEFT_REDIS'] ?? fail('weft queue status needs --redis redis://HOST:PORT/DB');
    const { queueStatus } = await import('../jobs/queue/status.ts');
    const queuesArg = str(args, 'queues');
    const status = await queueStatus(redis, str(args, 'prefix') ?? 'weft', queuesArg ? queuesArg.split(',') : null);
    if (flag(args, 'json')) return void console.log(JSON.stringify(status));
    for (const q of status.queues) {
      console.log(`${q.name.padEnd(20)} waiting ${String(q.waiting).padStart(5)}  active ${String(q.active).padStart(5)}  delayed ${String(q.delayed).padStart(5)}  workers: ${q.workers.join(', ') || 'none'}`);
    }
    if (status.queues.length === 0) console.log('(no queues)');
  },
};

const step: Command = {
  name: 'step',
  summary: 'run one step of a run (started by step handlers: containers, pods)',
  usage: '[--args PACKED]',
  flags: [{ name: 'args', arg: 'PACKED', help: 'the step\'s arguments, packed (or WEFT_STEP_ARGS)' }],
  // Its flags are parsed by step-command.ts, which launch.mjs runs straight away: a step's container loads only what a step needs.
  raw: true,
  async run(args) {
    const { runStepCommand } = await import('./step-command.ts');
    await runStepCommand(args.argv);
  },
};

/** Every command, in the order `weft --help` lists them. */
export const COMMANDS: readonly Command[] = [scheduler, worker, cluster, example, run, runs, daemon, list, step, bundle, queueWorker, queue];

export function version(): string {
  return (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'weft: a distributed task-graph runtime for TypeScript',
    '',
    'Usage: weft <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    "Run 'weft <command> --help' for a command's options; 'weft --version' for the version.",
    'Every command takes --log-level; those that connect to a scheduler, --token-file.',
  ].join('\n');
}
