/**
 * weft's job layer on its own, `weft/jobs`: ops, graphs, jobs, assets,
 * Definitions and executors, without the runtime's client, scheduler and
 * worker. A code location that imports it loads in a fraction of the time
 * `weft` takes, which every step's process pays (a container, a pod); `weft`
 * exports all of this too.
 */
export { op, out, dynamicOut, asset, OpDefinition, JobSpec, AssetDefinition, OutputHandle, DynamicOutputHandle, MappedOutputs, CollectedOutputs, DEFAULT_OUTPUT } from './definitions.ts';
export { dynamicOutput, DynamicOutput } from './dynamic.ts';
export type { OpContext, OpOptions, OpFn, Op, OutDef, StepLog, JobSpecOptions, GraphOptions, AssetOptions, RunConfig, StepNode, InputSource, RetryPolicy } from './definitions.ts';
export { job, graph, defineAssetJob, JobDefinition, AssetJobSpec, type JobOptions, type GraphDef, type ToJobOptions } from './job.ts';
export { Definitions, loadDefinitions, type DefinitionsOptions } from './repository.ts';
export { selectSteps } from './selection.ts';
export { executor, type Executor, type ExecutorDefinition, type ExecutorInit, type ExecutionContext, type ExecutorOptions, type ExecutorRequirement, type CodeLocation } from './executor.ts';
export { ActiveExecution, type ExecutionPlan, type PlannedStep } from './plan.ts';
export { JobExecutionResult, type ExecuteOptions, type StepFailure } from './run.ts';
export { event, eventForJson, type RunEvent, type RunEventType } from './events.ts';
export { inProcessExecutor } from './executors/in-process.ts';
export { multiprocessExecutor } from './executors/multiprocess.ts';
export { multiOrInProcessExecutor } from './executors/default.ts';
export { clusterExecutor, RESOURCES_TAG, type ClusterConfig } from './executors/cluster.ts';
export { dockerExecutor, type DockerConfig } from './executors/docker.ts';
export { DOCKER_TAG, ImageNotFoundError } from './handlers/docker-config.ts';
export { k8sJobExecutor, type K8sConfig } from './executors/k8s.ts';
export { queueExecutor, type QueueConfig } from './executors/queue.ts';
export { QUEUE_TAG, RUN_PRIORITY_TAG } from './queue/keys.ts';
export { K8S_TAG, type K8sStepConfig } from './handlers/k8s-config.ts';
export { stepDelegatingExecutor, stepDelegatingConfig, type StepDelegatingConfig, type StepDelegatingOptions } from './delegating/executor.ts';
export { StepHealthError, type StepHandler, type StepHandlerContext, type StepHealth, type StepRunContext } from './delegating/handler.ts';
export type { StepChannel } from './delegating/coordinator.ts';
export type { StepSpec } from './step/spec.ts';
export { PRIORITY_TAG } from './plan.ts';
export { weftCommand } from '../util/self.ts';
export { DefinitionError, RunConfigError, JobReconstructionError, RetryRequested, StepFailureError } from './errors.ts';
