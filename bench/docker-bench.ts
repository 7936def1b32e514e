/**
 * The docker executor bench: a 20-step chain and a 20-step fan-out, each step
 * in a container of its own, against the rate of bare `docker run --rm IMAGE
 * node -e 0` measured in the same run with the same concurrency. Needs a
 * running dockerd; builds the offline test image (test/helpers) first.
 *
 * The code location is prebuilt for `weft step` first (`weft bundle`), as
 * the last step of an image's build would do it.
 *
 *   npm run bench:docker                  a table
 *   npm run bench:docker -- --json        one JSON line per measurement
 *   npm run bench:docker -- --check       exit 1 if a target is missed
 *   npm run bench:docker -- --no-bundle   without the prebuilt code location
 */
import { execFile } from 'node:child_process';
import { parseArgs, promisify } from 'node:util';
import { dockerExecutor, loadDefinitions, type ExecutorDefinition } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { ROOT, testImage } from '../test/helpers/docker-image.ts';
import { buildLocationBundle } from '../src/jobs/step/bundle.ts';
import { bundleDir } from '../src/jobs/step/prebuilt.ts';
import { rmSync } from 'node:fs';
import { join } from 'node:path';

const run = promisify(execFile);
const MODULE = new URL('./docker-jobs.mjs', import.meta.url).href;
const CONCURRENCY = 4;

/** Seconds for `n` bare containers, `concurrency` at a time. */
async function bare(image: string, n: number, concurrency: number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      next++;
      await run('docker', ['run', '--rm', '--network', 'host', image, 'node', '-e', '0']);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, check: { type: 'boolean' }, runs: { type: 'string' }, 'no-bundle': { type: 'boolean' } } });
  const runs = Number(values.runs ?? 3);
  const image = testImage();
  const manifest = join(bundleDir(MODULE), 'locations.json');
  rmSync(manifest, { force: true });
  if (!values['no-bundle']) await buildLocationBundle(MODULE);
  const defs = await loadDefinitions(MODULE);
  const exec = dockerExecutor.configured({ image, network: 'host', volumes: [`${ROOT}:${ROOT}:ro`], maxConcurrent: CONCURRENCY }) as ExecutorDefinition;
  const weft = async (name: string): Promise<number> => {
    const t0 = performance.now();
    const r = await executeJob(defs.getJob(name), exec, { module: MODULE, jobName: name });
    if (!r.success) throw new Error(`bench run of ${name} failed: ${r.allEvents.at(-1)?.message}`);
    return (performance.now() - t0) / 1000;
  };
  await bare(image, 2, 1);
  await weft('chain'); // warm-up: dockerode, the engine's caches
  const rows: { bench: string; steps: number; bare_s: number; weft_s: number; ratio: number; overhead_ms_per_step: number; met: boolean }[] = [];
  for (const [name, concurrency] of [['chain', 1], ['fan_out', CONCURRENCY]] as const) {
    // Alternating, so that drift in the machine's speed hits both alike; the median of each.
    const b: number[] = [];
    const w: number[] = [];
    for (let i = 0; i < runs; i++) {
      b.push(await bare(image, 20, concurrency));
      w.push(await weft(name));
    }
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
    const bs = median(b);
    const ws = median(w);
    const row = { bench: `${name} (20 steps, ${concurrency} at a time${values['no-bundle'] ? ', no prebuilt code location' : ''})`, steps: 20, bare_s: round(bs), weft_s: round(ws), ratio: round(bs / ws), overhead_ms_per_step: Math.round(((ws - bs) / 20) * 1000 * concurrency), met: bs / ws >= 0.8 };
    rows.push(row);
    if (values.json) console.log(JSON.stringify(row));
  }
  if (!values.json) {
    console.log('\nweft docker executor bench (steps/s against bare docker run --rm IMAGE node -e 0)\n');
    console.log('bench                                 bare s   weft s   weft/bare  overhead/step  target >= 0.80');
    for (const r of rows) console.log(`${r.bench.padEnd(36)} ${r.bare_s.toFixed(2).padStart(6)} ${r.weft_s.toFixed(2).padStart(8)} ${r.ratio.toFixed(2).padStart(10)} ${`${r.overhead_ms_per_step} ms`.padStart(14)}  ${r.met ? 'met' : 'MISSED'}`);
  }
  if (values.check && rows.some((r) => !r.met)) process.exitCode = 1;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
