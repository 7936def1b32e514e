/**
 * The work-stealing bench (issue 30's figures), side by side with Dask in
 * one run when python3 has `distributed` (bench/stealing_dask.py runs the
 * same two scenarios):
 *
 * - joining: one worker (one thread) holds the inputs of 100 tasks of
 *   100 ms, all queued there; a second worker starts 1 s after they are
 *   submitted. Ideal makespan 5.5 s (1 s alone, then 9 s of work on two).
 * - uneven: 200 independent tasks on 2 workers of one thread, 10% of them
 *   20x longer (20 ms and 400 ms, in a seeded order). Lower bound: half the
 *   work, or the longest task.
 *
 * Tasks wait (a timer) rather than spin, so the 2-core machine's cores are
 * not what is measured.
 *
 *   npm run bench:stealing              a table
 *   npm run bench:stealing -- --json    one JSON line per measurement
 */
import { spawn, spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { LocalCluster, WEFT_BIN } from '../src/cluster/local-cluster.ts';
import type { Client } from '../src/client/client.ts';
import { FigureTable } from './table.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, 'no-dask': { type: 'boolean' } } });
const table = new FigureTable(values.json === true);
const TASKS = new URL('./tasks.ts', import.meta.url).href;
const fn = (name: string): string => `${TASKS}#${name}`;

/** Seeded order of the uneven scenario's durations: every tenth task, shuffled, is long. */
export function unevenDurations(n = 200, short = 20, long = 400): number[] {
  const out = Array.from({ length: n }, (_, i) => (i % 10 === 0 ? long : short));
  let seed = 7;
  for (let i = out.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [out[i], out[j]] = [out[j] as number, out[i] as number];
  }
  return out;
}

async function joining(): Promise<{ seconds: number; split: number[] }> {
  const cluster = await LocalCluster.start({ workers: 1, threadsPerWorker: 1, dashboardPort: null });
  let late: ReturnType<typeof spawn> | null = null;
  const client: Client = await cluster.client();
  try {
    const inputs = Array.from({ length: 100 }, (_, i) => client.submit<number>(fn('value'), i));
    await client.gather(inputs);
    const t0 = performance.now();
    const work = inputs.map((x) => client.submit<number>(fn('sleepy'), x, 100));
    const timer = setTimeout(() => {
      late = spawn(process.execPath, [WEFT_BIN, 'worker', cluster.address, '--nthreads', '1', '--no-nanny', '--log-level', 'warn'], { stdio: 'ignore' });
    }, 1000);
    const pids = await client.gather(work);
    clearTimeout(timer);
    const seconds = (performance.now() - t0) / 1000;
    const counts = new Map<number, number>();
    for (const p of pids) counts.set(p, (counts.get(p) ?? 0) + 1);
    return { seconds, split: [...counts.values()].sort((a, b) => b - a) };
  } finally {
    await client.close();
    (late as ReturnType<typeof spawn> | null)?.kill('SIGTERM');
    await cluster.close();
  }
}

async function uneven(): Promise<number> {
  const cluster = await LocalCluster.start({ workers: 2, threadsPerWorker: 1, dashboardPort: null });
  const client: Client = await cluster.client();
  try {
    // Durations measured once first, as a warm cluster knows them.
    await client.gather(Array.from({ length: 4 }, (_, i) => client.submit(fn('sleepy'), i, 20)));
    const t0 = performance.now();
    await client.gather(unevenDurations().map((ms, i) => client.submit(fn('sleepy'), i, ms)));
    return (performance.now() - t0) / 1000;
  } finally {
    await client.close();
    await cluster.close();
  }
}

/** Dask's figures for the same scenarios, or null when it is not installed. */
function dask(): { joining: number; joiningSplit: number[]; uneven: number } | null {
  if (values['no-dask']) return null;
  const script = new URL('./stealing_dask.py', import.meta.url).pathname;
  // Debian's python3-distributed (apt-get install -y python3-distributed), whichever python3 is first on the PATH.
  const r = spawnSync('/usr/bin/python3', [script, JSON.stringify(unevenDurations())], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) {
    console.error(`Dask's side did not run: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { joining: number; joiningSplit: number[]; uneven: number };
}

const j = await joining();
const u = await uneven();
const d = dask();
const durations = unevenDurations();
const lower = Math.max(durations.reduce((a, b) => a + b, 0) / 2, Math.max(...durations)) / 1000;
table.row('joining worker: makespan', j.seconds, 's', `<= 1.15x the ideal 5.5 s (${(j.seconds / 5.5).toFixed(2)}x)${d ? `, and <= Dask's ${d.joining.toFixed(2)} s` : ''}`, j.seconds <= 1.15 * 5.5 && (!d || j.seconds <= d.joining));
table.row('  tasks run by the worker that joined', j.split[1] ?? 0, 'of 100', d ? `(Dask: ${d.joiningSplit[1] ?? 0})` : '', true);
table.row('uneven durations: makespan', u, 's', `<= 1.2x the lower bound ${lower.toFixed(2)} s (${(u / lower).toFixed(2)}x)${d ? `, and <= Dask's ${d.uneven.toFixed(2)} s` : ''}`, u <= 1.2 * lower && (!d || u <= d.uneven));
table.print();
