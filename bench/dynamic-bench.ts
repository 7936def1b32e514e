/**
 * The dynamic outputs bench (issue 29's figures), each against its baseline
 * in the same run:
 *
 * - scale: 10,000 mapped copies and a collect, in process, against a static
 *   job of the same shape (a source, 10,000 steps taking from it, one step
 *   taking them all): cost per step, alternating, median of the rounds;
 * - streaming: a fan-out op emitting 1,000 keys over 2 s, mapped to steps of
 *   10 ms, on the multiprocess executor (warm step processes): how long
 *   after its key was emitted each copy starts (median, p95, first), and the
 *   total time against max(fan-out time, (mapped work + fan-out) / slots),
 *   the fan-out op holding a slot while it runs; and the same work as a
 *   static job, for what the executor itself takes;
 * - the same two on the cluster executor (a local cluster of 2 workers with
 *   as many threads in all), the scale one as steps/s against the static
 *   job's on the same cluster.
 *
 *   npm run bench:dynamic              a table
 *   npm run bench:dynamic -- --json    one JSON line per measurement
 */
import { parseArgs } from 'node:util';
import { FigureTable, median } from './table.ts';
import { clusterExecutor, LocalCluster, type ExecutorDefinition, type JobExecutionResult } from '../src/index.ts';
import { multiprocessExecutor } from '../src/jobs/executors/multiprocess.ts';
import { executeJob } from '../src/jobs/run.ts';
import { mapped10k, static10k, staticWork, streaming } from './dynamic-jobs.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, rounds: { type: 'string' }, parallelism: { type: 'string' } } });
const ROUNDS = Number(values.rounds ?? 5);
const PARALLELISM = Number(values.parallelism ?? 4);
/** The cluster's shape: as many slots in all as the multiprocess executor's. */
const CLUSTER_WORKERS = 2;
const CLUSTER_THREADS = PARALLELISM / CLUSTER_WORKERS;
const MODULE = new URL('./dynamic-jobs.ts', import.meta.url).href;

const table = new FigureTable(values.json === true);
const row = table.row.bind(table);
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

async function timed(go: () => Promise<JobExecutionResult>): Promise<number> {
  const t0 = performance.now();
  const r = await go();
  if (!r.success) throw new Error(`a bench run failed: ${r.failures.map((f) => `${f.stepKey}: ${f.error.message}`).join('; ')}`);
  return performance.now() - t0;
}

/** Per step (us), median of the rounds, of each job, run alternately after two warm-up rounds. */
async function perStep(go: Record<'dynamic' | 'static', () => Promise<JobExecutionResult>>): Promise<Record<'dynamic' | 'static', number>> {
  const steps = 10_002;
  for (let i = 0; i < 2; i++) for (const g of Object.values(go)) await timed(g);
  const seen: Record<'dynamic' | 'static', number[]> = { dynamic: [], static: [] };
  for (let i = 0; i < ROUNDS; i++) for (const k of ['dynamic', 'static'] as const) seen[k].push(await timed(go[k]));
  return { dynamic: (median(seen.dynamic) * 1000) / steps, static: (median(seen.static) * 1000) / steps };
}

async function scale(): Promise<void> {
  const us = await perStep({ dynamic: () => mapped10k.executeInProcess(), static: () => static10k.executeInProcess() });
  row('in_process, static job of the same shape (10,002 steps)', us.static, 'us/step', '(baseline)', true);
  const ratio = us.dynamic / us.static;
  row('in_process, 10,000 mapped copies and a collect', us.dynamic, 'us/step', `<= 2x a static step's (${ratio.toFixed(2)}x)`, ratio <= 2);
}

async function clusterScale(exec: ExecutorDefinition): Promise<void> {
  const on = (j: typeof mapped10k, name: string) => () => executeJob(j, exec, { module: MODULE, jobName: name });
  const us = await perStep({ dynamic: on(mapped10k, 'mapped_10k'), static: on(static10k, 'static_10k') });
  const rate = (x: number): number => 1e6 / x;
  row(`cluster (${CLUSTER_WORKERS} workers x ${CLUSTER_THREADS} threads), static job of the same shape`, rate(us.static), 'steps/s', '(baseline)', true);
  const share = us.static / us.dynamic;
  row('cluster, 10,000 mapped copies and a collect', rate(us.dynamic), 'steps/s', `>= 80% of the static job's (${(share * 100).toFixed(0)}%)`, share >= 0.8);
}

/**
 * `streaming` with `exec` (warm): how long after its key each copy started,
 * and the total time against the bound; and the same work as a static job.
 */
async function stream(label: string, exec: ExecutorDefinition, slots: number): Promise<void> {
  const run = (): Promise<JobExecutionResult> => executeJob(streaming, exec, { module: MODULE, jobName: 'streaming' });
  await run();
  const s0 = performance.now();
  await timed(() => executeJob(staticWork, exec, { module: MODULE, jobName: 'static_work' }));
  const staticSeconds = (performance.now() - s0) / 1000;
  const t0 = performance.now();
  const r = await run();
  const seconds = (performance.now() - t0) / 1000;
  if (!r.success) throw new Error(`the streaming run failed: ${r.failures.map((f) => `${f.stepKey}: ${f.error.message}`).join('; ')}`);
  const emitted = new Map<string, number>();
  for (const e of r.allEvents) if (e.type === 'STEP_OUTPUT' && e.stepKey === 'slow_items') emitted.set(`work[${(e.output as string).slice(7, -1)}]`, e.timestamp);
  const lags: number[] = [];
  for (const e of r.allEvents) if (e.type === 'STEP_START' && e.stepKey?.startsWith('work[')) lags.push(e.timestamp - (emitted.get(e.stepKey) as number));
  const fanOut = r.allEvents.filter((e) => e.stepKey === 'slow_items');
  const fanOutSeconds = ((fanOut.at(-1)?.timestamp ?? 0) - (fanOut[0]?.timestamp ?? 0)) / 1000;
  // The fan-out op holds one of the slots while it emits (a step process, a worker thread): the mapped work shares the rest.
  const bound = Math.max(fanOutSeconds, (1000 * 0.01 + fanOutSeconds) / slots);
  row(`${label}: the first copy's start after its key was emitted`, lags[0] ?? NaN, 'ms', '<= 50 ms', (lags[0] ?? Infinity) <= 50);
  row("  every copy's start after its key, median (the work outruns the slots: copies queue)", median(lags), 'ms', '', true);
  row('  the same, p95', pct(lags, 0.95), 'ms', '', true);
  row('  the same 1,000 steps of 10 ms as a static job on the same executor', staticSeconds, 's', '(what the executor takes for the work alone)', true);
  row('  total time of 1,000 keys over 2 s, mapped steps of 10 ms', seconds, 's', `<= 1.2x max(fan-out ${fanOutSeconds.toFixed(2)} s, (work + fan-out) / ${slots} slots): ${(seconds / bound).toFixed(2)}x`, seconds <= 1.2 * bound);
}

await scale();
await stream(`multiprocess warm (${PARALLELISM} processes)`, multiprocessExecutor.configured({ maxConcurrent: PARALLELISM, mode: 'warm' }) as ExecutorDefinition, PARALLELISM);
const cluster = await LocalCluster.start({ workers: CLUSTER_WORKERS, threadsPerWorker: CLUSTER_THREADS });
try {
  const exec = clusterExecutor.configured({ cluster: { existing: { address: cluster.address } } }) as ExecutorDefinition;
  await clusterScale(exec);
  await stream(`cluster (${CLUSTER_WORKERS} workers x ${CLUSTER_THREADS} threads)`, exec, CLUSTER_WORKERS * CLUSTER_THREADS);
} finally {
  await cluster.close();
}
table.print();
