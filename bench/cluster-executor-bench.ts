/**
 * The cluster executor bench: a job of 1,002 steps (a seed, a fan-out of 500
 * transforms each passing ~64 KiB to a follower, one fan-in) run on a local
 * cluster of 2 workers (1 thread each). Measures steps/s of whole runs, from
 * submitting the run to its result with every output fetched, and the bytes
 * the workers sent each other, against the fan-in's own inputs and against
 * all the outputs of the run.
 *
 *   npm run bench:cluster-executor              a table
 *   npm run bench:cluster-executor -- --json    one JSON line per run
 *   npm run bench:cluster-executor -- --check   exit 1 if a target is missed
 *   ... -- --runs 5 --no-fetch                  runs to time; leave outputs on the cluster
 */
import { parseArgs } from 'node:util';
import { clusterExecutor, LocalCluster, type Client, type JobExecutionResult } from '../src/index.ts';
import { encodeOwned } from '../src/protocol/codec.ts';
import { executeJob } from '../src/jobs/run.ts';
import defs, { fanOut } from './executor-jobs.ts';

interface Row {
  system: 'weft';
  bench: string;
  run: number;
  steps: number;
  seconds: number;
  steps_per_s: number;
  bytes_moved: number;
  fan_in_input_bytes: number;
  output_bytes: number;
  met: boolean;
}

/** Issue 31's figure (it was 2,000 before). */
const STEPS_TARGET = 5000;

async function peerBytes(client: Client): Promise<number> {
  const m = await client.workerMetrics();
  return Object.values(m).reduce((s, w) => s + w.bytesSentToPeers, 0);
}

/** Bytes of the outputs (as msgpack, as workers hold them) of the steps whose keys match. */
function outputBytes(r: JobExecutionResult, keys: readonly string[]): number {
  let n = 0;
  for (const k of keys) n += encodeOwned(r.outputForNode(k)).length;
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, check: { type: 'boolean' }, runs: { type: 'string', default: '5' }, 'no-fetch': { type: 'boolean' } } });
  const runs = Math.max(1, Math.min(50, Number(values.runs) || 5));
  const fetch = !values['no-fetch'];
  const cluster = await LocalCluster.start({ workers: 2, threadsPerWorker: 1 });
  const client = await cluster.client();
  const executorDef = (fetchOutputs: boolean): ReturnType<typeof clusterExecutor.configured> => clusterExecutor.configured({ cluster: { existing: { address: cluster.address } }, fetchOutputs });
  const location = { module: defs.location as string, jobName: 'fan_out' };
  const steps = fanOut.steps.length;
  const followers = fanOut.steps.filter((s) => s.op.name === 'follow').map((s) => s.key);
  const rows: Row[] = [];
  // Sizes of the outputs, from the warm-up run (which fetches them): the fan-in's inputs are the followers' outputs.
  let fanInBytes = 0;
  let allBytes = 0;
  try {
    // Run 0 warms up: the workers' threads import the code location and compile the step path.
    for (let run = 0; run <= runs; run++) {
      const before = await peerBytes(client);
      const t0 = performance.now();
      const r = await executeJob(fanOut, executorDef(run === 0 || fetch), location);
      const seconds = (performance.now() - t0) / 1000;
      if (!r.success) throw new Error(`bench run failed: ${r.allEvents.at(-1)?.message}`);
      // Every step's events, in order (checked after the timing).
      const order = new Map<string, string[]>();
      for (const e of r.allEvents) if (e.stepKey !== null) order.set(e.stepKey, [...(order.get(e.stepKey) ?? []), e.type]);
      for (const s of fanOut.steps) if (order.get(s.key)?.join() !== 'STEP_START,STEP_OUTPUT,STEP_SUCCESS') throw new Error(`step ${s.key} had events ${order.get(s.key)?.join() ?? 'none'}`);
      const moved = (await peerBytes(client)) - before;
      if (run === 0) {
        fanInBytes = outputBytes(r, followers);
        allBytes = outputBytes(r, fanOut.steps.map((s) => s.key));
      }
      const row: Row = {
        system: 'weft',
        bench: run === 0 ? 'cluster executor, warm-up' : 'cluster executor',
        run,
        steps,
        seconds: Math.round(seconds * 10000) / 10000,
        steps_per_s: Math.round(steps / seconds),
        bytes_moved: moved,
        fan_in_input_bytes: fanInBytes,
        output_bytes: allBytes,
        met: steps / seconds >= STEPS_TARGET && moved <= fanInBytes,
      };
      if (run > 0) rows.push(row);
      if (values.json) console.log(JSON.stringify(row));
      else process.stderr.write(`run ${run}${run === 0 ? ' (warm-up)' : ''}: ${row.steps_per_s} steps/s, ${moved} bytes moved between workers\n`);
    }
  } finally {
    await client.close();
    await cluster.close();
  }
  const sorted = [...rows].sort((a, b) => a.seconds - b.seconds);
  const median = sorted[Math.floor(sorted.length / 2)] as Row;
  if (!values.json) {
    console.log(`\nweft cluster executor bench: job fan_out, ${steps} steps, local cluster of 2 workers x 1 thread${fetch ? '' : ', outputs left on the cluster'}\n`);
    console.log(`median of ${rows.length} runs: ${median.seconds.toFixed(3)} s, ${median.steps_per_s} steps/s (target >= ${STEPS_TARGET})`);
    console.log(`bytes moved between workers: ${median.bytes_moved} (target <= the fan-in's inputs, ${median.fan_in_input_bytes} bytes; all outputs: ${median.output_bytes} bytes)`);
    console.log(median.met ? 'targets met' : 'TARGET MISSED');
  }
  if (values.check && !median.met) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
