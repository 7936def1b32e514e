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
 *   static job, for what the executor itself takes.
 *
 *   npm run bench:dynamic              a table
 *   npm run bench:dynamic -- --json    one JSON line per measurement
 */
import { parseArgs } from 'node:util';
import { FigureTable, median } from './table.ts';
import type { ExecutorDefinition, JobExecutionResult } from '../src/index.ts';
import { multiprocessExecutor } from '../src/jobs/executors/multiprocess.ts';
import { executeJob } from '../src/jobs/run.ts';
import { mapped10k, static10k, staticWork, streaming } from './dynamic-jobs.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, rounds: { type: 'string' }, parallelism: { type: 'string' } } });
const ROUNDS = Number(values.rounds ?? 5);
const PARALLELISM = Number(values.parallelism ?? 4);
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

async function scale(): Promise<void> {
  const steps = 10_002;
  const go = { dynamic: () => mapped10k.executeInProcess(), static: () => static10k.executeInProcess() };
  for (let i = 0; i < 2; i++) for (const g of Object.values(go)) await timed(g);
  const seen: Record<string, number[]> = { dynamic: [], static: [] };
  for (let i = 0; i < ROUNDS; i++) for (const [k, g] of Object.entries(go)) seen[k]?.push(await timed(g));
  const perStep = (k: string): number => (median(seen[k] as number[]) * 1000) / steps;
  row('in_process, static job of the same shape (10,002 steps)', perStep('static'), 'us/step', '(baseline)', true);
  const ratio = perStep('dynamic') / perStep('static');
  row('in_process, 10,000 mapped copies and a collect', perStep('dynamic'), 'us/step', `<= 2x a static step's (${ratio.toFixed(2)}x)`, ratio <= 2);
}

async function stream(): Promise<void> {
  const exec = multiprocessExecutor.configured({ maxConcurrent: PARALLELISM, mode: 'warm' }) as ExecutorDefinition;
  const run = (): Promise<JobExecutionResult> => executeJob(streaming, exec, { module: MODULE, jobName: 'streaming' });
  await run();
  const s0 = performance.now();
  await timed(() => executeJob(staticWork, exec, { module: MODULE, jobName: 'static_work' }));
  const staticSeconds = (performance.now() - s0) / 1000;
  const t0 = performance.now();
  const r = await run();
  const seconds = (performance.now() - t0) / 1000;
  if (!r.success) throw new Error('the streaming run failed');
  const emitted = new Map<string, number>();
  for (const e of r.allEvents) if (e.type === 'STEP_OUTPUT' && e.stepKey === 'slow_items') emitted.set(`work[${(e.output as string).slice(7, -1)}]`, e.timestamp);
  const lags: number[] = [];
  for (const e of r.allEvents) if (e.type === 'STEP_START' && e.stepKey?.startsWith('work[')) lags.push(e.timestamp - (emitted.get(e.stepKey) as number));
  const fanOut = r.allEvents.filter((e) => e.stepKey === 'slow_items');
  const fanOutSeconds = ((fanOut.at(-1)?.timestamp ?? 0) - (fanOut[0]?.timestamp ?? 0)) / 1000;
  // The fan-out op runs in a step process too, holding one of the slots while it emits: the mapped work shares the rest.
  const bound = Math.max(fanOutSeconds, (1000 * 0.01 + fanOutSeconds) / PARALLELISM);
  row(`multiprocess warm (${PARALLELISM} processes): the first copy's start after its key was emitted`, lags[0] ?? NaN, 'ms', '<= 50 ms', (lags[0] ?? Infinity) <= 50);
  row("  every copy's start after its key, median (the work outruns the processes: copies queue)", median(lags), 'ms', '', true);
  row('  the same, p95', pct(lags, 0.95), 'ms', '', true);
  row('  the same 1,000 steps of 10 ms as a static job on the same executor', staticSeconds, 's', '(what the executor takes for the work alone)', true);
  row('  total time of 1,000 keys over 2 s, mapped steps of 10 ms', seconds, 's', `<= 1.2x max(fan-out ${fanOutSeconds.toFixed(2)} s, (work + fan-out) / ${PARALLELISM} slots): ${(seconds / bound).toFixed(2)}x`, seconds <= 1.2 * bound);
}

await scale();
await stream();
table.print();
