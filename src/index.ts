/** weft's public API. */
export { Client, type ClientOptions, type SubmitOptions, type ComputeOptions } from './client/client.ts';
export { Future, type FutureStatus } from './client/future.ts';
export { ref, type Graph, type GraphMap, type TaskDef, type TaskFn, type TaskOptions } from './client/graph.ts';
export { progress, type ProgressResult } from './client/progress.ts';
export { LocalCluster, type LocalClusterOptions } from './cluster/local-cluster.ts';
export { SchedulerServer, type SchedulerOptions } from './scheduler/server.ts';
export { SchedulerState, type SchedulerConfig, type SchedulerEvent, type Instructions } from './scheduler/state-machine.ts';
export { WeftWorker, type WorkerOptions } from './worker/worker.ts';
export { taskContext, type TaskContext } from './worker/task-context.ts';
export type { WorkerSummary, WorkerMetrics } from './protocol/messages.ts';
export {
  WeftError,
  TaskError,
  DependencyError,
  KilledWorkerError,
  GraphError,
  NoWorkerError,
  CancelledError,
  InlineFunctionError,
  ProtocolError,
  HandshakeError,
  ConnectionClosedError,
  DataLostError,
  ConfigError,
} from './errors.ts';

// The job layer: ops, graphs, jobs, assets, Definitions and executors.
export { op, out, job, graph, asset, defineAssetJob, OpDefinition, JobDefinition, AssetDefinition, AssetJobSpec, OutputHandle, DEFAULT_OUTPUT } from './jobs/definitions.ts';
export type { OpContext, OpOptions, OpFn, Op, OutDef, StepLog, JobOptions, GraphOptions, GraphDef, ToJobOptions, AssetOptions, RunConfig, StepNode, InputSource, RetryPolicy } from './jobs/definitions.ts';
export { Definitions, type DefinitionsOptions } from './jobs/repository.ts';
export { executor, type Executor, type ExecutorDefinition, type ExecutorInit, type ExecutionContext, type ExecutorOptions, type ExecutorRequirement, type CodeLocation } from './jobs/executor.ts';
export { ActiveExecution, type ExecutionPlan, type PlannedStep } from './jobs/plan.ts';
export { JobExecutionResult, type ExecuteOptions, type StepFailure } from './jobs/run.ts';
export { event, eventForJson, type RunEvent, type RunEventType } from './jobs/events.ts';
export { inProcessExecutor } from './jobs/executors/in-process.ts';
export { multiprocessExecutor } from './jobs/executors/multiprocess.ts';
export { multiOrInProcessExecutor } from './jobs/executors/default.ts';
export { clusterExecutor, RESOURCES_TAG, type ClusterConfig } from './jobs/executors/cluster.ts';
export { dockerExecutor, type DockerConfig } from './jobs/executors/docker.ts';
export { DOCKER_TAG } from './jobs/handlers/docker-config.ts';
export { ImageNotFoundError } from './jobs/handlers/docker.ts';
export { k8sJobExecutor, type K8sConfig } from './jobs/executors/k8s.ts';
export { K8S_TAG, type K8sStepConfig } from './jobs/handlers/k8s-config.ts';
export { loadDefinitions } from './jobs/location.ts';
export { stepDelegatingExecutor, stepDelegatingConfig, StepHealthError, type StepDelegatingConfig, type StepDelegatingOptions } from './jobs/delegating/executor.ts';
export type { StepHandler, StepHandlerContext, StepHealth, StepRunContext } from './jobs/delegating/handler.ts';
export type { StepChannel } from './jobs/delegating/coordinator.ts';
export type { StepSpec } from './jobs/step/spec.ts';
export { PRIORITY_TAG } from './jobs/plan.ts';
export { weftCommand } from './util/self.ts';
export { DefinitionError, RunConfigError, JobReconstructionError, RetryRequested, StepFailureError } from './jobs/errors.ts';
