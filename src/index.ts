/** weft's public API. */
export { Client, type ClientOptions, type SubmitOptions, type ComputeOptions } from './client/client.ts';
export type { GetAllOptions } from './client/stream.ts';
export { Future, type FutureStatus } from './client/future.ts';
export { asCompleted, AsCompleted, wait, WaitTimeoutError, type WaitOptions } from './client/waiting.ts';
export { ref, type Graph, type GraphMap, type TaskDef, type TaskFn, type TaskOptions } from './client/graph.ts';
export { progress, type ProgressResult } from './client/progress.ts';
export { LocalCluster, type LocalClusterOptions } from './cluster/local-cluster.ts';
export { SchedulerServer, type SchedulerOptions } from './scheduler/server.ts';
export { SchedulerState, type SchedulerConfig, type SchedulerEvent, type Instructions } from './scheduler/state-machine.ts';
export { WeftWorker, type WorkerOptions } from './worker/worker.ts';
export { taskContext, secede, rejoin, type TaskContext } from './worker/task-context.ts';
export { Semaphore, Lock, Event, Variable, Queue, type SyncOptions, type SyncWaitOptions } from './client/coordination.ts';
export type { ActorHandle } from './client/actor.ts';
export type { WorkerSummary, WorkerMetrics } from './protocol/messages.ts';
export {
  WeftError,
  TaskError,
  RunError,
  DependencyError,
  KilledWorkerError,
  GraphError,
  NoWorkerError,
  CancelledError,
  SyncTimeoutError,
  ActorLostError,
  InlineFunctionError,
  ProtocolError,
  HandshakeError,
  ConnectionClosedError,
  DataLostError,
  ConfigError,
} from './errors.ts';

// The job layer (also on its own as 'weftjs/jobs', for code locations).
export * from './jobs/index.ts';
export * from './runs/index.ts';
