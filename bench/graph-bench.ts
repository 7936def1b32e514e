/**
 * weft's throughput bench: the workloads of ../shared/peers/dask_graph_bench.py
 * on a LocalCluster of 2 worker processes with 1 thread each.
 *
 *   npm run bench                 a table
 *   npm run bench -- --json       one JSON line per workload
 *   npm run bench -- --n 20000    N (independent tasks, tree leaves; chain is N/10)
 *   npm run bench -- --repeat 3   each workload 3 times in a row (fresh keys each time)
 *
 * Each workload is one graph submitted whole and gathered (like Dask's client.get),
 * built as a Map (a plain object works too, about 30 ms slower per 100,000 keys:
 * see GraphMap).
 *   BENCH_SCHED_ARGS="--no-work-stealing" npm run bench   the scheduler started with these flags too
 *   npm run bench -- --browser    with Chromium holding the dashboard's status page open
 *   npm run bench -- --chaos      a 20,000-task DAG calm, then with 10 workers killed (--kills N)
 *                                 every 3 s (--kill-every MS), on 3 workers under nannies (chaos.ts)
 *
 * BENCH_WINDOW=1 prints each workload's start and end (microseconds of the monotonic
 * clock, as V8's CPU profiles count) to stderr, to cut profiles of every process
 * (WEFT_NODE_ARGS="--cpu-prof ...") to the workload's time.
 *
 * Like the Dask peer benchmark, the cluster is warmed up with 100 tasks only,
 * so the first run of each workload is a cold run: targets (--check) are
 * judged on it. Later runs (--repeat) show the steady state.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { LocalCluster } from '../src/cluster/local-cluster.ts';
import { ref, type GraphMap, type TaskDef } from '../src/client/graph.ts';
import type { Client } from '../src/client/client.ts';

const TASKS = new URL('./tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

interface Row {
  system: 'weft';
  workload: string;
  /** 1 for the first (cold) run; higher with --repeat. */
  run: number;
  tasks: number;
  seconds: number;
  tasks_per_s: number;
  bytes_transferred: number | null;
  /** bandwidth: bytes moved (worker to worker, then to the client) per second, in MB/s... */
  mb_per_s?: number;
  /** ...and as a share of a plain loopback socket copy measured in the same run... */
  fraction_of_raw?: number;
  /** ...and of one whose reader keeps what it reads (in fresh buffers, as weft's receivers must). */
  fraction_of_kept_copy?: number;
  /** The scheduler's longest event-loop stall during the workload (ingest and run). */
  max_stall_ms: number | null;
  /** The scheduler's peak resident memory during the workload above its resident memory before it, per task. */
  scheduler_bytes_per_task: number | null;
  /** This process's (the client's) likewise: building the graph where it is built as it is sent (independent), and sending it. */
  client_bytes_per_task?: number | null;
  /** Worker processes that left the cluster during the workload (stopped over a memory limit, died). */
  workers_lost?: number;
}

/** Targets from the issue; the bench exits non-zero when one is missed (with --check). */
const TARGETS: Record<string, (r: Row) => boolean> = {
  independent: (r) => r.tasks_per_s >= 100_000,
  tree: (r) => r.tasks_per_s >= 50_000,
  chain: (r) => r.tasks_per_s >= 5_000,
  locality: (r) => r.bytes_transferred === 0,
  bandwidth: (r) => (r.fraction_of_raw ?? 0) >= 0.5,
};

/** The shuffle workload: SHUFFLE_PARTS partitions of 1 MiB, each cut into SHUFFLE_PARTS pieces. */
const SHUFFLE_PARTS = 64;

/** The bandwidth workload: BUFFERS values of BUFFER_MIB each. */
const BUFFERS = 64;
const BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * MB/s of a plain loopback TCP copy of `bytes` (a server writing, a client
 * reading and dropping), in this process: the ceiling weft's transfers are
 * judged against, measured in the same run because this machine's speed drifts.
 * `keep`: the client copies what it reads into fresh buffers of BUFFER_BYTES
 * and keeps them, as any receiver of values must (on this microVM, memory
 * touched for the first time costs more than the socket copy itself).
 */
async function rawLoopback(bytes: number, keep = false): Promise<number> {
  const chunk = Buffer.alloc(BUFFER_BYTES, 7);
  const server = createServer((s) => {
    let left = bytes;
    const more = (): void => {
      while (left > 0) {
        left -= chunk.length;
        if (!s.write(chunk)) return void s.once('drain', more);
      }
      s.end();
    };
    more();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const start = performance.now();
  await new Promise<void>((resolve, reject) => {
    const c = connect(port, '127.0.0.1');
    const kept: Buffer[] = [];
    let into = Buffer.alloc(0);
    let at = 0;
    c.on('data', (d: Buffer) => {
      if (!keep) return;
      for (let i = 0; i < d.length; ) {
        if (at === into.length) {
          into = Buffer.allocUnsafe(BUFFER_BYTES);
          kept.push(into);
          at = 0;
        }
        const n = Math.min(d.length - i, into.length - at);
        d.copy(into, at, i, i + n);
        at += n;
        i += n;
      }
    });
    c.on('end', resolve);
    c.on('error', reject);
  });
  const seconds = (performance.now() - start) / 1000;
  server.close();
  return bytes / 1e6 / seconds;
}

const TIMEOUT_S = 300;

/**
 * --browser: Chromium (playwright-core, /usr/bin/chromium) holds the
 * dashboard's status page open, live, through every workload: what watching
 * a cluster costs it. (BENCH_PAGE=blank: an empty page instead, to tell the
 * browser's own cost from the page's.)
 */
async function openStatusPage(cluster: LocalCluster): Promise<{ close(): Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  const page = await browser.newPage();
  if (process.env['BENCH_PAGE'] !== 'blank') {
    await page.goto(`${cluster.dashboardUrl}/${process.env['BENCH_PAGE'] ?? 'status'}`);
    await page.locator('#live[data-connected="yes"]').waitFor({ timeout: 30_000 });
  }
  await browserSettled();
  return browser;
}

/** CPU time (clock ticks) of the chromium processes on this machine, from /proc. */
function chromiumTicks(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'chromium') continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      // gone meanwhile
    }
  }
  return ticks;
}

/**
 * Waits until a freshly launched Chromium has settled (under 5% of a core
 * over half a second; at most 20 s): it starts busy for seconds, which
 * measured as 23% off the workloads run right after, with an empty page.
 */
async function browserSettled(): Promise<void> {
  const end = Date.now() + 20_000;
  let before = chromiumTicks();
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = chromiumTicks();
    if (now - before <= 2) return;
    before = now;
  }
}

/** A process's resident memory (VmRSS) or its peak (VmHWM), in bytes, from /proc (Linux); null elsewhere. */
function procMemory(pid: number | undefined, field: 'VmRSS' | 'VmHWM'): number | null {
  if (pid === undefined || !existsSync(`/proc/${pid}/status`)) return null;
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
}

interface SchedulerFigures {
  max_stall_ms: number | null;
  scheduler_bytes_per_task: number | null;
  client_bytes_per_task: number | null;
}

/**
 * Runs a workload measuring the scheduler process: its longest event-loop
 * stall (its own monitor, reset first) and its peak RSS above its RSS before
 * (the kernel's high-water mark, reset first by writing 5 to clear_refs).
 */
async function watched<T>(client: Client, pid: number | undefined, tasks: number, work: () => Promise<T>): Promise<{ result: T } & SchedulerFigures> {
  await client.schedulerStats({ reset: true });
  const idle = procMemory(pid, 'VmRSS');
  const peakKnown = idle !== null && resetPeak(pid);
  const clientIdle = procMemory(process.pid, 'VmRSS');
  const clientPeakKnown = clientIdle !== null && resetPeak(process.pid);
  const result = await work();
  const { maxStallMs } = await client.schedulerStats({ reset: true });
  const perTask = (before: number | null, known: boolean, p: number | undefined): number | null => {
    const peak = known ? procMemory(p, 'VmHWM') : null;
    return peak !== null && before !== null ? Math.round(Math.max(0, peak - before) / tasks) : null;
  };
  return { result, max_stall_ms: maxStallMs, scheduler_bytes_per_task: perTask(idle, peakKnown, pid), client_bytes_per_task: perTask(clientIdle, clientPeakKnown, process.pid) };
}

/** Resets a process's peak resident memory (VmHWM) to its current (Linux: 5 to clear_refs); false where that cannot be done. */
function resetPeak(pid: number | undefined): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

async function timed(client: Client, graph: GraphMap, keys: string[]): Promise<number> {
  const start = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`workload took longer than ${TIMEOUT_S} s`)), TIMEOUT_S * 1000);
  });
  const h0 = process.hrtime.bigint();
  try {
    await Promise.race([client.get(graph, keys), timeout]);
  } finally {
    clearTimeout(timer);
  }
  if (process.env['BENCH_WINDOW']) process.stderr.write(`WINDOW ${h0 / 1000n} ${process.hrtime.bigint() / 1000n}\n`);
  return (performance.now() - start) / 1000;
}

/** Like `timed`, for a graph given as entries (client.getAll); checks every value (inc: i + 1). */
async function timedAll(client: Client, entries: Iterable<readonly [string, TaskDef]>, n: number): Promise<number> {
  const start = performance.now();
  const h0 = process.hrtime.bigint();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // Ten million tasks take a minute or two here.
    timer = setTimeout(() => reject(new Error(`workload took longer than ${TIMEOUT_S * 2} s`)), TIMEOUT_S * 2000);
  });
  let values: number[];
  try {
    values = (await Promise.race([client.getAll(entries), timeout])) as number[];
  } finally {
    clearTimeout(timer);
  }
  const seconds = (performance.now() - start) / 1000;
  if (process.env['BENCH_WINDOW']) process.stderr.write(`WINDOW ${h0 / 1000n} ${process.hrtime.bigint() / 1000n}\n`);
  if (values.length !== n || values.some((v, i) => v !== i + 1)) throw new Error('independent: wrong values');
  return seconds;
}

async function bytesBetweenWorkers(client: Client): Promise<number> {
  const m = await client.workerMetrics();
  return Object.values(m).reduce((s, x) => s + x.bytesSentToPeers, 0);
}

function row(workload: string, run: number, tasks: number, w: { result: number } & SchedulerFigures, moved: number | null = null): Row {
  const seconds = w.result;
  return { system: 'weft', workload, run, tasks, seconds: Math.round(seconds * 10000) / 10000, tasks_per_s: Math.round(tasks / seconds), bytes_transferred: moved, max_stall_ms: w.max_stall_ms, scheduler_bytes_per_task: w.scheduler_bytes_per_task, client_bytes_per_task: w.client_bytes_per_task };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, n: { type: 'string' }, check: { type: 'boolean' }, only: { type: 'string' }, repeat: { type: 'string' }, browser: { type: 'boolean' }, chaos: { type: 'boolean' }, 'kill-every': { type: 'string' }, kills: { type: 'string' } } });
  if (values.chaos) {
    // Workers killed while a 20,000-task DAG runs, against the same DAG calm (chaos.ts).
    const { runChaos } = await import('./chaos.ts');
    const row = await runChaos({ n: Number(values.n ?? 20_000), ms: 2, killEveryMs: Number(values['kill-every'] ?? 3000), kills: Number(values.kills ?? 10), seed: 20261206 });
    console.log(values.json ? JSON.stringify(row) : row);
    if (values.check && !(row.values_right && row.workers_at_end === 3 && (row.kills < 10 || row.ratio <= 2))) process.exitCode = 1;
    return;
  }
  const n = Number(values.n ?? 100_000);
  if (!Number.isInteger(n) || n < 2) throw new Error(`--n must be an integer >= 2 (got ${values.n})`);
  const repeat = Number(values.repeat ?? 1);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 20) throw new Error(`--repeat must be an integer from 1 to 20 (got ${values.repeat})`);
  const only = values.only?.split(',');
  const want = (w: string): boolean => !only || only.includes(w);
  const rows: Row[] = [];
  const cluster = await LocalCluster.start({ workers: 2, threadsPerWorker: 1, logLevel: 'warn', ...(process.env['BENCH_SCHED_ARGS'] ? { schedulerArgs: process.env['BENCH_SCHED_ARGS'].split(' ') } : {}) });
  const client = await cluster.client();
  // The worker processes before each workload: one gone by its end counts as lost.
  let pids = new Set<number>();
  const emit = async (r: Row): Promise<void> => {
    const now = new Set((await client.workers()).map((w) => w.pid));
    r.workers_lost = [...pids].filter((p) => !now.has(p)).length;
    pids = now;
    rows.push(r);
    if (values.json) console.log(JSON.stringify(r));
    else process.stderr.write(`  ${r.workload} (run ${r.run}): ${r.tasks} tasks in ${r.seconds.toFixed(3)} s\n`);
  };

  pids = new Set((await client.workers()).map((w) => w.pid));
  const pid = cluster.schedulerPid;
  const browser = values.browser ? await openStatusPage(cluster) : null;
  try {
    // Warm-up: import the task module on both workers.
    const warm = new Map<string, TaskDef>();
    for (let i = 0; i < 100; i++) warm.set(`w-${i}`, { fn: fn('inc'), args: [i] });
    await client.get(warm, [...warm.keys()]);

    for (let run = 1; run <= repeat; run++) {
      if (want('independent')) {
        // Read from a generator as it is sent (client.getAll): at 10 million tasks, no graph is held anywhere whole.
        const inc = fn('inc');
        const key = `a${run}-`;
        function* entries(): Generator<readonly [string, TaskDef]> {
          for (let i = 0; i < n; i++) yield [key + i, { fn: inc, args: [i] }];
        }
        await emit(row('independent', run, n, await watched(client, pid, n, () => timedAll(client, entries(), n))));
      }

      if (want('tree')) {
        const g = new Map<string, TaskDef>();
        for (let i = 0; i < n; i++) g.set(`t${run}-0-${i}`, { fn: fn('inc'), args: [i] });
        let level = 0;
        let width = n;
        while (width > 1) {
          for (let j = 0; j + 1 < width; j += 2) g.set(`t${run}-${level + 1}-${j / 2}`, { fn: fn('add'), args: [ref(`t${run}-${level}-${j}`), ref(`t${run}-${level}-${j + 1}`)] });
          if (width % 2) g.set(`t${run}-${level + 1}-${(width - 1) / 2}`, { fn: fn('inc'), args: [ref(`t${run}-${level}-${width - 1}`)] });
          width = Math.ceil(width / 2);
          level++;
        }
        await emit(row('tree', run, g.size, await watched(client, pid, g.size, () => timed(client, g, [`t${run}-${level}-0`]))));
      }

      if (want('chain')) {
        const m = Math.max(Math.floor(n / 10), 1);
        const g = new Map<string, TaskDef>([[`c${run}-0`, { fn: fn('inc'), args: [0] }]]);
        for (let i = 1; i < m; i++) g.set(`c${run}-${i}`, { fn: fn('inc'), args: [ref(`c${run}-${i - 1}`)] });
        await emit(row('chain', run, m, await watched(client, pid, m, () => timed(client, g, [`c${run}-${m - 1}`]))));
      }

      if (want('locality')) {
        const before = await bytesBetweenWorkers(client);
        const g = new Map<string, TaskDef>();
        const outs: string[] = [];
        for (let c = 0; c < 8; c++) {
          g.set(`l${run}-${c}-0`, { fn: fn('makeBuffer'), args: [c] });
          for (let s = 1; s < 20; s++) g.set(`l${run}-${c}-${s}`, { fn: fn('touch'), args: [ref(`l${run}-${c}-${s - 1}`)] });
          outs.push(`l${run}-${c}-19`);
        }
        const w = await watched(client, pid, g.size, () => timed(client, g, outs));
        await emit(row('locality', run, g.size, w, (await bytesBetweenWorkers(client)) - before));
      }

      if (want('shuffle')) {
        // An all-to-all exchange by tasks, as a dataframe shuffle: the peer bench's graph.
        const p = SHUFFLE_PARTS;
        const g = new Map<string, TaskDef>();
        for (let i = 0; i < p; i++) {
          g.set(`sh${run}-in-${i}`, { fn: fn('makePart'), args: [i] });
          g.set(`sh${run}-split-${i}`, { fn: fn('split'), args: [ref(`sh${run}-in-${i}`), p] });
          for (let j = 0; j < p; j++) g.set(`sh${run}-pick-${i}-${j}`, { fn: fn('pick'), args: [ref(`sh${run}-split-${i}`), j] });
        }
        const outs: string[] = [];
        for (let j = 0; j < p; j++) {
          const pieces = [];
          for (let i = 0; i < p; i++) pieces.push(ref(`sh${run}-pick-${i}-${j}`));
          g.set(`sh${run}-join-${j}`, { fn: fn('join'), args: pieces });
          outs.push(`sh${run}-join-${j}`);
        }
        const before = await bytesBetweenWorkers(client);
        const w = await watched(client, pid, g.size, () => timed(client, g, outs));
        await emit(row('shuffle', run, g.size, w, (await bytesBetweenWorkers(client)) - before));
      }

      if (want('bandwidth')) {
        // The buffers are made on one worker first (not timed); then, timed, a task on the other worker takes each (moved worker to worker) and the client gathers the results.
        const [a, b] = await client.workers();
        if (!a || !b) throw new Error('the bandwidth workload needs two workers');
        const src = new Map<string, TaskDef>();
        for (let i = 0; i < BUFFERS; i++) src.set(`bw${run}-src-${i}`, { fn: fn('makeBuffer16'), args: [i], workers: [a.name] });
        const made = await client.compute(src, { keys: [...src.keys()] });
        await Promise.all(Object.values(made).map((f) => f.done()));
        const g = new Map<string, TaskDef>();
        const outs: string[] = [];
        for (let i = 0; i < BUFFERS; i++) {
          g.set(`bw${run}-dst-${i}`, { fn: fn('touch'), args: [ref(`bw${run}-src-${i}`)], workers: [b.name] });
          outs.push(`bw${run}-dst-${i}`);
        }
        const before = await bytesBetweenWorkers(client);
        const w = await watched(client, pid, g.size, () => timed(client, g, outs));
        const moved = (await bytesBetweenWorkers(client)) - before;
        for (const f of Object.values(made)) f.release();
        const total = moved + BUFFERS * BUFFER_BYTES;
        const mbPerS = total / 1e6 / w.result;
        const raw = await rawLoopback(total);
        const kept = await rawLoopback(total, true);
        const share = (x: number): number => Math.round((mbPerS / x) * 100) / 100;
        await emit({ ...row('bandwidth', run, g.size, w, moved), mb_per_s: Math.round(mbPerS), fraction_of_raw: share(raw), fraction_of_kept_copy: share(kept) });
      }
    }
  } finally {
    await browser?.close();
    await client.close();
    await cluster.close();
  }

  if (!values.json) {
    console.log('\nweft graph bench (LocalCluster: 2 worker processes x 1 thread)\n');
    console.log('workload      run    tasks     seconds   tasks/s    bytes moved  stall ms  sched B/task  client B/task  target (judged on run 1)');
    for (const r of rows) {
      const ok = TARGETS[r.workload]?.(r) ? 'met' : 'MISSED';
      console.log(`${r.workload.padEnd(12)} ${String(r.run).padStart(4)} ${String(r.tasks).padStart(8)} ${r.seconds.toFixed(3).padStart(10)} ${String(r.tasks_per_s).padStart(9)} ${String(r.bytes_transferred ?? '-').padStart(14)} ${String(r.max_stall_ms ?? '-').padStart(9)} ${String(r.scheduler_bytes_per_task ?? '-').padStart(13)} ${String(r.client_bytes_per_task ?? '-').padStart(13)}  ${r.run === 1 ? ok : ''}`);
    }
  }
  if (values.check && rows.some((r) => r.run === 1 && !TARGETS[r.workload]?.(r))) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
