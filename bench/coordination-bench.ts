/**
 * The coordination primitives bench (issue 30's figures):
 *
 * - a Semaphore of 4 guarding 1,000 tasks (2 workers of 4 threads, each
 *   task holding its lease 2 ms): the most holders any task saw (the
 *   scheduler's count, read by the task while it held its lease);
 * - a Lock's round trip from a client on loopback: acquire then release,
 *   1,000 times, median and p95 of each pair.
 *
 *   npm run bench:coordination [-- --json]
 */
import { parseArgs } from 'node:util';
import { LocalCluster } from '../src/cluster/local-cluster.ts';
import { Lock } from '../src/client/coordination.ts';
import { FigureTable, median } from './table.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean' } } });
const table = new FigureTable(values.json === true);
const TASKS = new URL('./tasks.ts', import.meta.url).href;

const cluster = await LocalCluster.start({ workers: 2, threadsPerWorker: 4, dashboardPort: null });
const client = await cluster.client();
try {
  const t0 = performance.now();
  const held = await client.gather(Array.from({ length: 1000 }, () => client.submitWith<number>({ pure: false }, `${TASKS}#guarded`, 'bench-db', 2)));
  const seconds = (performance.now() - t0) / 1000;
  const most = Math.max(...held);
  table.row('Semaphore of 4 guarding 1,000 tasks: the most holders any task saw', most, 'holders', '<= 4 (and 4 reached)', most === 4);
  table.row('  the 1,000 tasks took', seconds, 's', '', true);
  const lock = new Lock({ name: 'bench-lock', client });
  const pairs: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const a = performance.now();
    await lock.acquire();
    await lock.release();
    pairs.push(performance.now() - a);
  }
  const p95 = [...pairs].sort((x, y) => x - y)[Math.floor(pairs.length * 0.95)] as number;
  table.row('Lock round trip (acquire + release) from a client, median', median(pairs) / 2, 'ms per call', '< 1 ms', median(pairs) / 2 < 1);
  table.row('  acquire + release, median / p95', median(pairs), 'ms', `(p95 ${p95.toFixed(2)} ms)`, true);
} finally {
  await client.close();
  await cluster.close();
}
table.print();
