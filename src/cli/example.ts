/**
 * `weft example`: the quick start's main job. Starts a local cluster, submits
 * a graph (Monte Carlo samples and a tree reduction) from a TypeScript task
 * module, shows progress, prints the estimate and stops the cluster.
 */
import { LocalCluster } from '../cluster/local-cluster.ts';
import { ref, type Graph } from '../client/graph.ts';
import { progress } from '../client/progress.ts';
import type { LogLevel } from '../util/log.ts';
import { FROM_SOURCE, packageFile, WEFT_ROOT } from '../util/self.ts';

/** The task module: its TypeScript in a checkout, compiled by the package build in the package (which needs no tsx). */
const TASKS = FROM_SOURCE ? packageFile('examples/pi.ts').href : new URL('examples/pi.js', WEFT_ROOT).href;

export async function runExample(opts: { workers: number; tasks: number; logLevel: LogLevel }): Promise<void> {
  const dartsPerTask = 200_000;
  const out = process.stdout;
  out.write(`Starting a local cluster: 1 scheduler, ${opts.workers} workers ...\n`);
  const cluster = await LocalCluster.start({ workers: opts.workers, threadsPerWorker: 1, logLevel: opts.logLevel });
  const stop = (): void => void cluster.close().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const client = await cluster.client();
    out.write(`Cluster at ${cluster.address}${cluster.dashboardUrl ? `; dashboard at ${cluster.dashboardUrl}/status` : ''}\n`);
    const graph: Graph = {};
    let level: string[] = [];
    for (let i = 0; i < opts.tasks; i++) {
      graph[`sample-${i}`] = { fn: `${TASKS}#sample`, args: [i + 1, dartsPerTask] };
      level.push(`sample-${i}`);
    }
    for (let depth = 0; level.length > 1; depth++) {
      const next: string[] = [];
      for (let i = 0; i < level.length; i += 2) {
        const a = level[i] as string;
        const b = level[i + 1];
        if (b === undefined) {
          next.push(a);
          continue;
        }
        const key = `sum-${depth}-${i / 2}`;
        graph[key] = { fn: `${TASKS}#add`, args: [ref(a), ref(b)] };
        next.push(key);
      }
      level = next;
    }
    graph['pi'] = { fn: `${TASKS}#estimate`, args: [ref(level[0] as string), opts.tasks * dartsPerTask] };
    const keys = Object.keys(graph);
    out.write(`Running ${keys.length} tasks (${opts.tasks} samples of ${dartsPerTask.toLocaleString('en')} darts, tree-summed) ...\n`);
    const futures = await client.compute(graph, { keys });
    const p = await progress(Object.values(futures));
    const pi = (await futures['pi']) as number;
    out.write(`pi is about ${pi.toFixed(6)} (error ${Math.abs(pi - Math.PI).toExponential(2)}), ${keys.length} tasks in ${p.seconds.toFixed(2)} s\n`);
    for (const f of Object.values(futures)) f.release();
    await client.close();
  } finally {
    await cluster.close();
  }
}
