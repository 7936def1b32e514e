/**
 * The scheduler process: a WebSocket server around the scheduler state
 * machine. It turns connections and messages into events, carries out the
 * instructions, and feeds the clock in as a tick.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { WebSocketServer } from 'ws';
import { DEFAULT_DOOR, listen } from '../protocol/listen.ts';
import { RateLimitedLines } from '../util/untrusted.ts';
import { serverTls, type TlsOptions } from '../protocol/tls.ts';
import type { Connection, ConnectionLimits } from '../protocol/connection.ts';
import { CLOSE_SHUTDOWN, DEFAULT_LIMITS, TURN_BUDGET_MS } from '../protocol/connection.ts';
import { TurnBudget } from '../protocol/turn-budget.ts';
import { accept } from '../protocol/handshake.ts';
import { messageSchemas, type ClientToScheduler, type SchedulerToClient, type WorkerInfo, type WorkerToScheduler } from '../protocol/messages.ts';
import type { RunsSource } from './dashboard/snapshot.ts';
import { ConfigError } from '../errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { SchedulerState, type SchedulerConfig, type SchedulerEvent } from './state-machine.ts';
import { SchedulerHttp, type SchedulerFigures } from './http.ts';
import { DashboardFeed } from './dashboard/feed.ts';
import { checkExposure } from '../protocol/exposure.ts';

export interface SchedulerOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  token?: string | undefined;
  log?: Logger;
  config?: Partial<SchedulerConfig>;
  limits?: ConnectionLimits;
  tickMs?: number;
  /** The HTTP port for /health, /metrics and /api/v1/workers (0: a free one; absent or null: none), on the scheduler's host. */
  dashboardPort?: number | null;
  /** When `dashboardPort` is taken, serve on a free port instead (and warn) rather than fail: for a default port, not one asked for. */
  dashboardFallback?: boolean;
  /** Run storage for the dashboard's runs pages (weft scheduler gives the instance's: runs/dashboard-source.ts). */
  runs?: RunsSource | null;
  /** TLS: wss:// on the scheduler's port and https:// on the dashboard's, with this certificate. */
  tls?: TlsOptions | null;
  /** Web origins whose pages may open a WebSocket to the scheduler (none by default: see listen.ts). */
  allowOrigins?: readonly string[];
  /** Host names the dashboard answers besides its own address, IP literals and localhost (DNS rebinding: see http.ts). */
  allowHosts?: readonly string[];
}

type AnyConn = Connection<{ op: string }, { op: string }>;


export class SchedulerServer {
  readonly state: SchedulerState;
  private conns = new Map<string, AnyConn>();
  private nextId = 1;
  private tick: NodeJS.Timeout;
  private closing: Promise<void> | null = null;
  /** While stopping, workers leaving is expected: keep only errors in the log. */
  private stopping = false;
  /** A `continue` event is due (see continueLater). */
  private continuing = false;
  /** The event loop's delays: its longest stall is what the bench reports (process-stats). */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  /** The same, read and reset by /metrics. */
  private readonly scrapeDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  /** The dashboard, /health and /metrics, unless turned off... */
  private http: SchedulerHttp | null = null;
  /** ...and what the dashboard shows, gathered from the workers' messages as they pass. */
  private feed: DashboardFeed | null = null;

  private constructor(
    readonly address: string,
    private readonly server: WebSocketServer,
    private readonly log: Logger,
    config: Partial<SchedulerConfig>,
    tickMs: number,
  ) {
    this.state = new SchedulerState(config);
    this.tick = setInterval(() => this.handle({ type: 'tick', now: Date.now() }), tickMs);
    this.tick.unref();
    this.loopDelay.enable();
    this.scrapeDelay.enable();
  }

  static async start(opts: SchedulerOptions = {}): Promise<SchedulerServer> {
    const host = opts.host ?? '127.0.0.1';
    checkExposure('scheduler', host, opts.token);
    // One handling budget per turn for all its connections (turn-budget.ts).
    const limits = { ...(opts.limits ?? DEFAULT_LIMITS), turn: new TurnBudget(TURN_BUDGET_MS) };
    const tls = serverTls(opts.tls ?? null, 'scheduler');
    const { server, address, door } = await listen(host, opts.port ?? 8786, limits, { ...DEFAULT_DOOR, allowOrigins: opts.allowOrigins ?? [] }, tls);
    const log = opts.log ?? silentLogger();
    const s = new SchedulerServer(address, server, log, opts.config ?? {}, opts.tickMs ?? 500);
    // A stranger knocking again and again costs a few lines of the log.
    const refusals = new RateLimitedLines((line) => log.warn(line), 'connections refused at their handshake');
    server.on('connection', (ws) => {
      const id = `conn-${s.nextId++}`;
      void accept(ws, {
        token: opts.token,
        roles: ['client', 'worker'],
        id,
        limits,
        label: id,
        schemaFor: (role) => (role === 'worker' ? messageSchemas().workerToScheduler : messageSchemas().clientToScheduler),
      }).then((ok) => {
        if (!ok) {
          refusals.line(`connection ${id} refused at its handshake`);
          return;
        }
        door.admitted(ws);
        s.adopt(id, ok.hello.role, ok.conn, ok.hello.worker);
      });
    });
    if (opts.dashboardPort !== undefined && opts.dashboardPort !== null) {
      try {
        const figures = s.figures();
        s.feed = new DashboardFeed({
          workers: figures.workers,
          states: figures.taskStates,
          groups: figures.groups,
          task: (key) => s.state.taskView(key),
        });
        const serve = (port: number): Promise<SchedulerHttp> => SchedulerHttp.start({ host, port, token: opts.token, tls, allowHosts: opts.allowHosts ?? [], log: (line) => log.warn(line), runs: opts.runs ?? null }, figures, s.feed as DashboardFeed);
        try {
          s.http = await serve(opts.dashboardPort);
        } catch (err) {
          if (!opts.dashboardFallback || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
          // Another scheduler (or Dask) has it: as Dask does, the dashboard goes on a free port, and says where.
          s.http = await serve(0);
          log.warn({ taken: opts.dashboardPort, dashboard: s.http.url }, `dashboard port ${opts.dashboardPort} is taken; serving the dashboard at ${s.http.url} instead`);
        }
      } catch (err) {
        await s.close();
        throw new ConfigError(`cannot serve the dashboard port on ${host}:${opts.dashboardPort}: ${(err as Error).message}; pick another with --dashboard-port, or --no-dashboard`);
      }
    }
    log.info({ address: s.address, dashboard: s.dashboardUrl, auth: opts.token ? 'token' : 'none' }, 'scheduler listening');
    return s;
  }

  private adopt(id: string, role: string, conn: AnyConn, info: WorkerInfo | undefined): void {
    this.conns.set(id, conn);
    conn.onInternalError = (err) => this.log.error({ conn: id, err }, 'error handling a message');
    if (role === 'worker' && info) {
      this.handle({ type: 'worker-connected', worker: id, info, now: Date.now() });
      const name = info.name;
      (conn as unknown as Connection<WorkerToScheduler, { op: string }>).onMessages((msgs) => {
        const now = Date.now();
        for (const msg of msgs) {
          this.state.handle({ type: 'worker-message', worker: id, msg, now });
          if (this.feed) this.observe(name, msg, now);
        }
        this.http?.meters.messageIn('worker', msgs.length);
        this.flush();
      });
      conn.onClose((code, reason) => {
        this.conns.delete(id);
        this.handle({ type: 'worker-disconnected', worker: id, reason: `connection closed (${code}${reason ? `: ${reason}` : ''})` });
      });
    } else {
      this.handle({ type: 'client-connected', client: id });
      this.log.info({ conn: id }, 'client connected');
      const client = conn as unknown as Connection<ClientToScheduler, { op: string }>;
      client.onMessages((msgs) => {
        const now = Date.now();
        let handled = 0;
        for (const msg of msgs) {
          // A frame holds several parts of a graph, each tens of ms of work: past the turn's budget, the rest wait for a later turn.
          if (handled > 0 && client.turnSpent) break;
          handled++;
          if (msg.op === 'process-stats') conn.send(this.processStats(msg.id, msg.reset === true, msg.gc === true));
          else if (msg.op === 'ping') conn.send({ op: 'pong', id: msg.id } as { op: string });
          else if (msg.op === 'report-data') conn.send(this.reportData(msg.id, msg.since));
          else if (msg.op === 'update-graph' && this.http) {
            const start = performance.now();
            this.state.handle({ type: 'client-message', client: id, msg, now });
            this.http.meters.graphIngest((performance.now() - start) / 1000, msg.keys.length);
          } else this.state.handle({ type: 'client-message', client: id, msg, now });
        }
        this.http?.meters.messageIn('client', handled);
        // A graph arrives in parts, frame after frame in one read: its first
        // tasks leave for the workers now, not after the last part is read.
        this.flush(true);
        return handled;
      });
      conn.onClose((code, reason) => {
        this.conns.delete(id);
        if (code === 4400) this.log.warn({ conn: id, reason }, 'client dropped for a protocol error');
        this.handle({ type: 'client-disconnected', client: id });
      });
    }
  }

  /** What the dashboard shows of a worker's message. */
  private observe(worker: string, msg: WorkerToScheduler, now: number): void {
    const feed = this.feed as DashboardFeed;
    if (msg.op === 'finished') feed.finished(worker, msg.keys, msg.durations, now);
    else if (msg.op === 'erred') feed.failed(worker, msg.key, msg.error.message, now);
    else if (msg.op === 'task-events') feed.taskEvents(msg.topics, msg.data);
  }

  /** Where the dashboard, /health and /metrics are served (null: turned off). */
  get dashboardUrl(): string | null {
    return this.http?.url ?? null;
  }

  /** What the HTTP side reads, when asked. */
  private figures(): SchedulerFigures {
    return {
      taskStates: () => this.state.stateCounts(),
      workers: () => this.state.workerSummaries(),
      groups: () => this.state.groupCounts(),
      steals: () => this.state.stealCounts(),
      adaptiveTarget: () => this.state.adaptiveTarget(),
      loopDelay: () => {
        const d = { p99: this.scrapeDelay.percentile(99) / 1e9, max: this.scrapeDelay.max / 1e9 };
        this.scrapeDelay.reset();
        return d;
      },
    };
  }

  /** What the dashboard recorded since `since`, for a client's performance report. */
  private reportData(id: number, since: number): { op: 'report-data-reply'; id: number; json?: string; error?: string } {
    if (!this.feed) return { op: 'report-data-reply', id, error: 'this scheduler runs without its dashboard (--no-dashboard), which records what a report shows' };
    return { op: 'report-data-reply', id, json: JSON.stringify(this.feed.report(since)) };
  }

  /** This process's own figures: they are not the state machine's to know. */
  private processStats(id: number, reset: boolean, gc: boolean): Extract<SchedulerToClient, { op: 'process-stats-reply' }> {
    const collect = (globalThis as { gc?: () => void }).gc;
    if (gc && collect) collect();
    const mem = process.memoryUsage();
    const reply = { op: 'process-stats-reply' as const, id, maxStallMs: Math.round(this.loopDelay.max / 1e5) / 10, rss: mem.rss, heapUsed: mem.heapUsed, tasks: this.state.tasks.size, taskRuns: this.state.taskRuns, tasksComputed: this.state.tasksComputed };
    if (reset) this.loopDelay.reset();
    return reply;
  }

  private handle(ev: SchedulerEvent): void {
    this.state.handle(ev);
    this.flush();
  }

  /** Left-over work goes on after the I/O that is waiting: the scheduler answers while it works through a large release. */
  private continueLater(): void {
    if (this.continuing || !this.state.hasPendingWork) return;
    this.continuing = true;
    setImmediate(() => {
      this.continuing = false;
      if (!this.stopping) this.handle({ type: 'continue' });
    });
  }

  /** Carries out the state machine's instructions; `now` writes the messages at once instead of at the end of the turn. */
  private flush(now = false): void {
    const ins = this.state.takeInstructions();
    for (const [id, msgs] of ins.messages) {
      const conn = this.conns.get(id);
      if (!conn) continue;
      // A coordination call's answer is waited on (a lock): out at the end of this turn, not after the batching interval.
      for (const m of msgs) conn.send(m as { op: string }, (m as { op: string }).op === 'sync-reply');
      if (now) conn.flush();
    }
    for (const c of ins.close) this.conns.get(c.id)?.close(CLOSE_SHUTDOWN, c.reason);
    for (const l of ins.logs) if (!this.stopping || l.level === 'error') this.log[l.level](l.data ?? {}, l.msg);
    this.continueLater();
  }

  /** Closes every connection (workers shut down with it) and the server. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.stopping = true;
    this.closing = (async () => {
      clearInterval(this.tick);
      this.loopDelay.disable();
      this.scrapeDelay.disable();
      this.feed?.close();
      await this.http?.close();
      for (const c of this.conns.values()) c.close(CLOSE_SHUTDOWN, 'scheduler shutting down');
      for (const ws of this.server.clients) ws.terminate();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.log.info('scheduler stopped');
    })();
    return this.closing;
  }
}
