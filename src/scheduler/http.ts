/**
 * The scheduler's HTTP port (Dask's dashboard port, 8787 by default):
 *
 *   /status, /workers, /tasks, /runs   the dashboard's pages (live)
 *   /login           the token form (starts a session: the `weft_session` cookie)
 *   /health          200 while the scheduler serves (no token needed)
 *   /metrics         Prometheus text format (prom-client)
 *   /api/v1/workers  the workers as JSON
 *   /api/v1/stream   the pages' updates (server-sent events)
 *   /api/v1/tasks    the latest tasks that ended (?q= filters, ?limit=)
 *   /api/v1/runs     the job runs: run storage's latest (every executor's),
 *                    and the cluster executor's runs seen on this cluster
 *   POST /api/v1/runs/RUN/reexecute   queues a re-execution from failure
 *
 * With a token (required off loopback, as for the scheduler's own port),
 * every path but /health wants it as `Authorization: Bearer TOKEN`, or a
 * session the login form started (dashboard/auth.ts). The figures are read when asked for, off the
 * scheduler's hot path: a scrape costs one pass over the tasks.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { DashboardAuth } from './dashboard/auth.ts';
import type { AddressInfo } from 'node:net';
import type { TlsOptions } from '../protocol/tls.ts';
import type * as PromClient from 'prom-client';
import type { WorkerSummary } from '../protocol/messages.ts';
import { lazyPackage } from '../util/lazy.ts';
import type { GroupCounts } from './state-machine.ts';
import type { DashboardFeed } from './dashboard/feed.ts';
import type { RunsSource, RunView } from './dashboard/snapshot.ts';
import { dashboardScript } from './dashboard/assets.ts';
import { appPage, loginPage } from './dashboard/pages.ts';

const prom = lazyPackage<typeof PromClient>('prom-client');

/** What the HTTP side reads from the scheduler when asked. */
export interface SchedulerFigures {
  /** Tasks per state. */
  taskStates(): Record<string, number>;
  workers(): WorkerSummary[];
  /** Per task group (function label): tasks finished and erred so far, and per state now. */
  groups(): GroupCounts[];
  /** The event loop's delay: 99th percentile and maximum since the last scrape, in seconds. */
  loopDelay(): { p99: number; max: number };
  /** Work stealing so far: tasks asked of their workers, and tasks moved. */
  steals(): { requests: number; moved: number };
  /** How many workers the work wants now (Dask's adaptive_target), for 5 s of work per thread. */
  adaptiveTarget(): number;
}

/** Counters and timings the scheduler's server adds to as it works. */
export interface SchedulerMeters {
  messageIn(from: 'client' | 'worker', n: number): void;
  graphIngest(seconds: number, tasks: number): void;
}

export interface HttpOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  token?: string | undefined;
  /** https:// with this certificate. */
  tls?: TlsOptions | null;
  /** Host names answered besides IP literals and localhost (see hostAllowed). */
  allowHosts?: readonly string[];
  /** Where wrong tokens are said (a few lines, then a count). */
  log?: (line: string) => void;
  /** Run storage for the runs pages (see RunsSource). */
  runs?: RunsSource | null;
}

/**
 * Whether a request's Host header names this server as a user would: an IP
 * address, localhost, or a name in `allowHosts`. A page on an attacker's
 * domain whose name is made to resolve to 127.0.0.1 (DNS rebinding) sends its
 * own name as Host, so it is refused, and cannot read the dashboard or its
 * API. A request without Host (no browser sends one) is answered.
 */
export function hostAllowed(header: string | undefined, allowHosts: readonly string[]): boolean {
  if (header === undefined) return true;
  const name = (header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.replace(/:\d+$/, '')).toLowerCase();
  if (name === 'localhost' || /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || /^\[[0-9a-f:.]+\]$/.test(name)) return true;
  return allowHosts.some((h) => h.toLowerCase() === name);
}

export class SchedulerHttp {
  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly meters: SchedulerMeters,
  ) {}

  static async start(opts: HttpOptions, figures: SchedulerFigures, feed: DashboardFeed): Promise<SchedulerHttp> {
    const { Registry, Gauge, Counter, Histogram } = prom();
    // A registry of this server's own: nothing is registered globally.
    const registry = new Registry();
    new Gauge({
      name: 'weft_tasks',
      help: 'Tasks the scheduler knows, by state',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(figures.taskStates())) this.set({ state }, n);
      },
    });
    const perWorker = (name: string, help: string, value: (w: WorkerSummary) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['worker'],
        registers: [registry],
        collect() {
          this.reset();
          for (const w of figures.workers()) this.set({ worker: w.name }, value(w));
        },
      });
    };
    new Gauge({ name: 'weft_workers', help: 'Workers connected', registers: [registry], collect() { this.set(figures.workers().length); } });
    new Gauge({ name: 'weft_threads', help: 'Executor threads of the connected workers', registers: [registry], collect() { this.set(figures.workers().reduce((s, w) => s + w.nthreads, 0)); } });
    perWorker('weft_worker_processing_tasks', 'Tasks sent to the worker and not finished', (w) => w.processing);
    perWorker('weft_worker_stored_bytes', 'Bytes of results held by the worker', (w) => w.storedBytes);
    perWorker('weft_worker_memory_bytes', "The worker process's resident memory, from its heartbeat", (w) => w.memory);
    perWorker('weft_worker_sent_to_peers_bytes', 'Bytes the worker sent to other workers, from its heartbeat', (w) => w.bytesSentToPeers ?? 0);
    perWorker('weft_worker_fetched_bytes', 'Bytes the worker fetched from other workers, from its heartbeat', (w) => w.bytesFetched ?? 0);
    perWorker('weft_worker_spilled_bytes', 'Bytes of results the worker spilled to disk, from its heartbeat', (w) => w.spilledBytes ?? 0);
    perWorker('weft_worker_paused', 'Whether the worker is paused: past its memory limit, it starts no task', (w) => (w.paused ? 1 : 0));
    perWorker('weft_worker_spill_blocked', 'Whether the worker cannot spill results to disk (its disk is full)', (w) => (w.spillBlocked ? 1 : 0));
    const byGroup = (name: string, help: string, value: (g: { done: number; erred: number }) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['group'],
        registers: [registry],
        collect() {
          this.reset();
          for (const g of figures.groups()) this.set({ group: g.name }, value(g));
        },
      });
    };
    byGroup('weft_tasks_finished_total', 'Tasks finished, by group (function label)', (g) => g.done);
    byGroup('weft_tasks_erred_total', 'Tasks erred, by group (function label)', (g) => g.erred);
    new Gauge({
      name: 'weft_event_loop_lag_seconds',
      help: "The scheduler's event-loop delay since the last scrape",
      labelNames: ['quantile'],
      registers: [registry],
      collect() {
        const d = figures.loopDelay();
        this.set({ quantile: '0.99' }, d.p99);
        this.set({ quantile: '1' }, d.max);
      },
    });
    new Gauge({ name: 'weft_steal_requests_total', help: 'Tasks the scheduler asked a worker to give up for another (work stealing)', registers: [registry], collect() { this.set(figures.steals().requests); } });
    new Gauge({ name: 'weft_tasks_stolen_total', help: 'Tasks moved to another worker by work stealing', registers: [registry], collect() { this.set(figures.steals().moved); } });
    const messages = new Counter({ name: 'weft_messages_received_total', help: 'Messages received, by sender', labelNames: ['from'], registers: [registry] });
    const ingest = new Histogram({ name: 'weft_graph_ingest_seconds', help: 'Time to take in one graph message (or part)', buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] });
    const ingestTasks = new Counter({ name: 'weft_graph_tasks_received_total', help: 'Tasks received in graphs', registers: [registry] });
    const meters: SchedulerMeters = {
      messageIn: (from, n) => messages.inc({ from }, n),
      graphIngest: (seconds, tasks) => {
        ingest.observe(seconds);
        ingestTasks.inc(tasks);
      },
    };

    const allowHosts = opts.allowHosts ?? [];
    const auth = opts.token === undefined ? null : new DashboardAuth({ token: opts.token, secure: Boolean(opts.tls), log: opts.log ?? (() => {}) });
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (!hostAllowed(req.headers.host, allowHosts)) {
        res.writeHead(421, { 'Content-Type': 'text/plain' });
        res.end('this dashboard answers its own address only: start the scheduler with --allow-host NAME to serve it under another name\n');
        return;
      }
      void serve(req, res, auth, registry, figures, feed, opts.runs ?? null);
    };
    const tls = opts.tls;
    // A request's headers must come within 5 s of connecting, checked every second (Node's default check is every 30 s): a connection that sends nothing, or half a request, is closed.
    const limits = { headersTimeout: 5000, requestTimeout: 10_000, connectionsCheckingInterval: 1000 };
    const server = tls ? createTlsServer({ ...limits, cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) }, handler) : createServer(limits, handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => resolve());
    });
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    return new SchedulerHttp(server, `${tls ? 'https' : 'http'}://${host}:${port}`, meters);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const PAGES = new Set(['/status', '/workers', '/tasks', '/runs']);

/** Runs the pages show: run storage's latest, then the cluster's own that storage does not hold; or why storage cannot be read. */
async function allRuns(runs: RunsSource | null, feed: DashboardFeed): Promise<{ runs: RunView[]; storage: string | null }> {
  const seen = feed.runsNow();
  if (!runs) return { runs: seen, storage: 'no run storage: the scheduler was started without one' };
  try {
    const stored = await runs.recent(RUNS_SHOWN);
    const ids = new Set(stored.map((r) => r.runId));
    return { runs: [...stored, ...seen.filter((r) => !ids.has(r.runId))], storage: null };
  } catch (err) {
    return { runs: seen, storage: `run storage cannot be read: ${(err as Error).message}` };
  }
}

const RUNS_SHOWN = 20;

/**
 * The re-execute button: a POST from the dashboard's own page only (its
 * Origin must be this server, so no other site's page can post it), with
 * the same token or session as every page.
 */
async function reexecute(req: IncomingMessage, res: ServerResponse, auth: DashboardAuth | null, runs: RunsSource | null, runId: string): Promise<void> {
  const origin = req.headers.origin;
  if (origin === undefined || new URL(origin).host !== req.headers.host) return send(res, 403, 'text/plain', 'a re-execution is asked from the dashboard\'s own page only\n');
  const verdict = auth === null ? 'ok' : auth.check(req);
  if (verdict === 'limited') return tooMany(res);
  if (verdict !== 'ok') return send(res, 401, 'text/plain', 'this scheduler wants its token\n');
  if (!runs) return send(res, 409, 'text/plain', 'this scheduler has no run storage\n');
  try {
    const queued = await runs.reexecuteFromFailure(runId);
    return send(res, 200, 'application/json', JSON.stringify({ runId: queued }));
  } catch (err) {
    return send(res, 409, 'text/plain', `${(err as Error).message}\n`);
  }
}

async function serve(req: IncomingMessage, res: ServerResponse, auth: DashboardAuth | null, registry: PromClient.Registry, figures: SchedulerFigures, feed: DashboardFeed, runs: RunsSource | null): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://weft');
  const path = url.pathname;
  try {
    if (req.method === 'POST' && path === '/login') return await login(req, res, auth);
    const reexec = req.method === 'POST' ? /^\/api\/v1\/runs\/([A-Za-z0-9-]{1,64})\/reexecute$/.exec(path) : null;
    if (reexec) return await reexecute(req, res, auth, runs, reexec[1] as string);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'only GET (and POST /login, POST /api/v1/runs/RUN/reexecute)\n');
    if (path === '/health') return send(res, 200, 'text/plain', 'ok\n');
    if (path === '/login') return send(res, 200, 'text/html; charset=utf-8', loginPage(safeNext(url.searchParams.get('next')), false));
    // The script holds no data: the login page's redirect target loads it before any token is checked.
    if (path === '/assets/app.js') return send(res, 200, 'text/javascript; charset=utf-8', await dashboardScript(), 'public, max-age=300');
    const page = path === '/' ? '/status' : path;
    const verdict = auth === null ? 'ok' : auth.check(req);
    if (verdict === 'limited') return tooMany(res);
    if (verdict !== 'ok') {
      if (PAGES.has(page)) {
        res.writeHead(302, { Location: `/login?next=${encodeURIComponent(page)}` });
        return void res.end();
      }
      res.setHeader('WWW-Authenticate', 'Bearer');
      return send(res, 401, 'text/plain', 'this scheduler wants its token: Authorization: Bearer TOKEN\n');
    }
    if (path === '/') {
      res.writeHead(302, { Location: '/status' });
      return void res.end();
    }
    if (PAGES.has(path)) return send(res, 200, 'text/html; charset=utf-8', appPage(`weft: ${path.slice(1)}`));
    if (path === '/metrics') return send(res, 200, registry.contentType, await registry.metrics());
    if (path === '/api/v1/workers') return send(res, 200, 'application/json', JSON.stringify(figures.workers()));
    // As Dask's, which the dask-kubernetes operator polls: { "workers": n }.
    if (path === '/api/v1/adaptive_target') return send(res, 200, 'application/json', JSON.stringify({ workers: figures.adaptiveTarget() }));
    if (path === '/api/v1/tasks') {
      const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 200) || 200, 1), 5000);
      return send(res, 200, 'application/json', JSON.stringify(feed.recent(url.searchParams.get('q') ?? '', limit)));
    }
    if (path === '/api/v1/runs') return send(res, 200, 'application/json', JSON.stringify(await allRuns(runs, feed)));
    if (path === '/api/v1/stream') {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
      return feed.open(res);
    }
    return send(res, 404, 'text/plain', `no such page: ${path}\n`);
  } catch (err) {
    send(res, 500, 'text/plain', `${(err as Error).message}\n`);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string, cache = 'no-store'): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': cache });
  res.end(body);
}

/** Where to go after logging in: a path on this server only (never another site). */
function safeNext(next: string | null): string {
  return next && /^\/[a-z]*$/.test(next) ? next : '/status';
}

function tooMany(res: ServerResponse): void {
  res.setHeader('Retry-After', '1');
  send(res, 429, 'text/plain', 'too many wrong tokens from this address: wait a second\n');
}

/** The login form's POST: the right token starts a session (its cookie) and goes on; a wrong one gets the form again, refused. */
async function login(req: IncomingMessage, res: ServerResponse, auth: DashboardAuth | null): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 4096) return send(res, 413, 'text/plain', 'login form too large\n');
    chunks.push(chunk);
  }
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  const next = safeNext(form.get('next'));
  if (auth === null) {
    res.writeHead(303, { Location: next });
    return void res.end();
  }
  const verdict = auth.login(req, form.get('token') ?? '');
  if (verdict === 'limited') return tooMany(res);
  if (verdict === 'refused' || verdict === 'ok') return send(res, 401, 'text/html; charset=utf-8', loginPage(next, true));
  res.writeHead(303, { Location: next, 'Set-Cookie': verdict.cookie });
  res.end();
}
