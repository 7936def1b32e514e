/**
 * Runs a job's steps on a weft cluster: one task per step (see
 * step/cluster-task.ts), depending on the tasks of its upstream steps, sent
 * to the scheduler as a graph (cluster-graph.ts). Outputs stay in the memory
 * of the worker that made them; a step runs where most of its input bytes
 * are and fetches the rest from other workers, never through the scheduler
 * or this process.
 *
 * Step events come back while steps run: each step task publishes them on
 * the run's topic, which this process subscribes to before submitting.
 * Retries happen inside the step's task, so the graph stays as submitted; a
 * worker lost in the middle of a step gets the step rerun elsewhere by the
 * scheduler. Keys and topic carry the run id, so runs never collide.
 *
 * A job with dynamic outputs grows as it runs: each item's event makes the
 * copies of the steps mapped over it, submitted at once; the item itself
 * is already on the fan-out step's worker (put early, scheduler/early.ts),
 * so they start there, or near it, while the fan-out step still runs.
 *
 *   job({ name: 'etl', executorDef: clusterExecutor.configured({ cluster: { existing: { address: 'ws://127.0.0.1:8786' } } }) }, ...)
 */
import { executor, loadedExecution, type ExecutorDefinition } from '../executor.ts';
import { clusterConfig, type ClusterConfig } from './cluster-config.ts';

export { clusterConfig, RESOURCES_TAG, type ClusterConfig } from './cluster-config.ts';

export const clusterExecutor: ExecutorDefinition<ClusterConfig> = executor(
  { name: 'cluster', configSchema: clusterConfig, requirements: ['reconstructable-job'] },
  ({ config }) => ({
    // The run's code, the client and the cluster load when a run starts: a code location that only names this executor does not load them.
    execute: (ctx) => loadedExecution(import('./cluster-run.ts').then((m) => m.runOnCluster(ctx, config))),
  }),
);
