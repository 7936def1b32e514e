/**
 * The chaos workload (`npm run bench -- --chaos`), and the random DAG the
 * chaos test runs too (test/chaos.test.ts): a seeded DAG of small tasks,
 * each taking up to 3 earlier ones, whose every value is known here. Run
 * once calm, then again while a random worker process is killed with -9
 * every few seconds (10 kills, by default), on the same cluster of three workers under their
 * nannies. Not a timed test: figures for bench/README.md.
 */
import { LocalCluster } from '../src/cluster/local-cluster.ts';
import { ref, type TaskDef } from '../src/client/graph.ts';
import { rng } from '../examples/pi.ts';

const MIX = `${new URL('./tasks.ts', import.meta.url).href}#mix`;

/** mulberry32, as the example's task module has it: the same numbers for the same seed. */
export { rng };

/** The DAG of `n` tasks of `ms` each (keys under `prefix`), and its values, computed here as mix() computes them. */
export function chaosDag(seed: number, n: number, ms: number, prefix = `chaos-${seed}`): { graph: Map<string, TaskDef>; keys: string[]; expected: number[] } {
  const rand = rng(seed);
  const graph = new Map<string, TaskDef>();
  const expected: number[] = [];
  for (let i = 0; i < n; i++) {
    const deps = i === 0 ? [] : [...new Set(Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * i)))];
    graph.set(`${prefix}-${i}`, { fn: MIX, args: [i, ms, ...deps.map((d) => ref(`${prefix}-${d}`))] });
    expected.push((i * 2654435761 + deps.reduce((a, d) => a + (expected[d] as number), 0)) % 1_000_003);
  }
  return { graph, keys: [...graph.keys()], expected };
}

export interface ChaosRow {
  system: 'weft';
  workload: 'chaos';
  tasks: number;
  /** The calm run, then the run with kills. */
  calm_seconds: number;
  seconds: number;
  ratio: number;
  kills: number;
  /** Results computed per task of the graph, in the run with kills (1: nothing computed twice). */
  task_runs_per_task: number;
  /** Task runs the scheduler sent per task (with runs stopped before they ran: a value given back, a task sent again). */
  task_sends_per_task: number;
  workers_at_end: number;
  values_right: boolean;
}

/** Runs the DAG calm, then with `kills` kills, `killEveryMs` apart; bounded: a run that takes 10 minutes fails. */
export async function runChaos(opts: { n: number; ms: number; killEveryMs: number; kills: number; seed: number }): Promise<ChaosRow> {
  const cluster = await LocalCluster.start({ workers: 3, dashboardPort: null });
  const client = await cluster.client();
  const bounded = <T>(p: Promise<T>, what: string): Promise<T> => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not finish within 600 s`)), 600_000).unref())]);
  try {
    const calm = chaosDag(opts.seed, opts.n, opts.ms, 'calm');
    let t0 = performance.now();
    await bounded(client.get(calm.graph, calm.keys), 'the calm run');
    const calmSeconds = (performance.now() - t0) / 1000;
    process.stderr.write(`chaos: the calm run took ${calmSeconds.toFixed(1)} s\n`);
    const wild = chaosDag(opts.seed, opts.n, opts.ms, 'wild');
    const before = await client.schedulerStats();
    let kills = 0;
    const rand = rng(opts.seed ^ 0x5eed);
    const killer = setInterval(() => {
      if (kills >= opts.kills) return clearInterval(killer);
      const pids = cluster.workers.map((w) => w.pid).filter((p): p is number => p !== undefined);
      const victim = pids[Math.floor(rand() * pids.length)];
      if (victim === undefined) return;
      try {
        process.kill(victim, 'SIGKILL');
        kills++;
      } catch {
        // gone already
      }
    }, opts.killEveryMs);
    t0 = performance.now();
    // Progress on stderr every 5 s: how far the run is, and how many workers are connected.
    const progress = setInterval(() => {
      void Promise.all([client.schedulerStats(), client.workers()]).then(([st, ws]) => process.stderr.write(`chaos: ${((performance.now() - t0) / 1000).toFixed(0)} s, ${kills} kills, ${st.tasksComputed - before.tasksComputed} task runs, ${st.tasks} tasks held, ${ws.length} workers\n`), () => {});
    }, 5000);
    let values: number[];
    try {
      values = (await bounded(client.get(wild.graph, wild.keys), 'the run with kills')) as number[];
    } finally {
      clearInterval(killer);
      clearInterval(progress);
    }
    const seconds = (performance.now() - t0) / 1000;
    const after = await client.schedulerStats();
    // The workers come back: counted after a bounded wait.
    const deadline = Date.now() + 60_000;
    while ((await client.workers()).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const round = (x: number, d = 100): number => Math.round(x * d) / d;
    return {
      system: 'weft',
      workload: 'chaos',
      tasks: opts.n,
      calm_seconds: round(calmSeconds),
      seconds: round(seconds),
      ratio: round(seconds / calmSeconds),
      kills,
      task_runs_per_task: round((after.tasksComputed - before.tasksComputed) / opts.n),
      task_sends_per_task: round((after.taskRuns - before.taskRuns) / opts.n),
      workers_at_end: (await client.workers()).length,
      values_right: values.every((v, i) => v === wild.expected[i]),
    };
  } finally {
    await client.close();
    await cluster.close();
  }
}
