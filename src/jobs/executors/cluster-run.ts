/** A run on the cluster executor (cluster.ts): loaded when the run starts. */
import { lazySchemas } from '../../util/zod.ts';
import type { Client } from '../../client/client.ts';
import type { Future } from '../../client/future.ts';
import type { LocalCluster } from '../../cluster/local-cluster.ts';
import { NoWorkerError, serializeError, TaskError, WeftError } from '../../errors.ts';
import { MAX_TOPIC, type WorkerSummary } from '../../protocol/messages.ts';
import { eachRunEvent, RUN_TOPIC_PREFIX } from '../../protocol/topics.ts';
import { stepEventSchema } from '../event-schema.ts';
import type { StepTaskSpec } from '../step/cluster-task.ts';
import { codeVersion } from '../location.ts';
import { jsonTag } from '../op-tags.ts';
import { event, type RunEvent } from '../events.ts';
import type { ExecutionContext } from '../executor.ts';
import type { ActiveExecution, PlannedStep } from '../plan.ts';
import { Inbox, retriesEnabled } from './common.ts';
import { RESOURCES_TAG, type ClusterConfig } from './cluster-config.ts';
import { RunGraph } from './cluster-graph.ts';
import { keepsRecord } from '../step/cluster-keys.ts';
import { splitCopyKey } from '../dynamic.ts';

const resourcesSchema = lazySchemas((z) => z.record(z.string().min(1), z.number().positive().finite()));


type Incoming = { ev: unknown } | { step: PlannedStep; error: Error | null };

/** Where the steps of a run are, as this process has heard. */
interface Progress {
  /** Steps with a STEP_START and no end yet. */
  started: Set<string>;
  ended: Set<string>;
}

export async function* runOnCluster(ctx: ExecutionContext, config: ClusterConfig): AsyncGenerator<RunEvent | RunEvent[]> {
  const location = ctx.location;
  if (!location) throw new WeftError('the cluster executor needs the code location of the job');
  const { runId, plan } = ctx;
  const topic = `${RUN_TOPIC_PREFIX}${runId}`;
  if (topic.length > MAX_TOPIC) throw new WeftError(`run id ${runId.slice(0, 40)}... is too long for the cluster executor (at most ${MAX_TOPIC - RUN_TOPIC_PREFIX.length} characters)`);
  // Mapped steps' tags apply to each of their copies.
  const templates = [...plan.steps, ...[...plan.mappedOver.values()].flat()];
  const resources = stepResources(templates);

  // The client and the cluster load when a run starts: a code location that only names this executor does not load them.
  const [{ Client }, { LocalCluster }] = await Promise.all([import('../../client/client.ts'), import('../../cluster/local-cluster.ts')]);
  let cluster: LocalCluster | null = null;
  let client: Client | null = null;
  const cfg = config.cluster;
  if ('local' in cfg) {
    yield ctx.engineEvent(`starting a local cluster of ${cfg.local.workers ?? 2} worker(s) for run ${runId}`);
    cluster = await LocalCluster.start({ workers: cfg.local.workers ?? 2, threadsPerWorker: cfg.local.threadsPerWorker ?? 1 });
  }
  const address = cluster ? cluster.address : (cfg as { existing: { address: string } }).existing.address;
  const token = 'existing' in cfg ? cfg.existing.token : undefined;

  const inbox = new Inbox<Incoming>();
  const push = (item: Incoming): void => inbox.push(item);
  let graph: RunGraph | null = null;
  let unsubscribe = (): void => {};
  try {
    client = await Client.connect(address, token === undefined ? {} : { token });
    // Subscribed before anything is submitted: no event of the run is missed.
    unsubscribe = client.subscribe(topic, (message) => eachRunEvent(message, (ev) => push({ ev })));
    const active = ctx.activeExecution();
    const unplaceable = unplaceableSteps(templates, resources, await client.workers());
    const spec: Omit<StepTaskSpec, 'stepKey'> = { runId, module: location.module, version: codeVersion(location.module), jobName: location.jobName, runConfig: ctx.runConfig, ...(ctx.opSelection ? { opSelection: [...ctx.opSelection] } : {}), retries: retriesEnabled(config.retries), topic, ...(ctx.outputDirectory !== null ? { outputDir: ctx.outputDirectory } : {}) };
    graph = new RunGraph(ctx, {
      client,
      active,
      spec,
      resources,
      fetchOutputs: config.fetchOutputs,
      onEnded: (step, error) => push({ step, error }),
      // The steps of a graph the scheduler did not take end with the reason.
      onSubmitError: (steps, error) => {
        for (const step of steps) push({ step, error });
      },
    });
    const progress: Progress = { started: new Set(), ended: new Set() };
    yield* follow(ctx, { active, graph, progress, inbox, address, unplaceable: (key) => (unplaceable.has(splitCopyKey(key).template) ? resources.get(splitCopyKey(key).template) ?? {} : null) });
    if (ctx.signal.aborted) {
      // Cancelled: the run's tasks are released (a running one sees its signal abort); other runs go on.
      await graph.settled();
      await client.cancel([...graph.futures.values()]);
      graph.futures.clear();
      for (const key of progress.started) yield event('STEP_FAILURE', runId, key, `step ${key} was stopped: the run was canceled`, { error: { name: 'CancelledError', message: 'the run was canceled' } });
      active.abandon();
      return;
    }
    if (config.fetchOutputs) {
      // A step's events may come before its submission's futures are set (both can arrive in one frame): every submission is
      // taken first, so no finished step is left out of the fetch. (Not the cause of the fan-out test's failures: see bench/README.md.)
      await graph.settled();
      yield* fetchOutputs(ctx, client, graph.futures, (key) => active.statusOf(key) === 'succeeded');
    }
  } finally {
    unsubscribe();
    if (graph) {
      await graph.settled();
      for (const f of graph.futures.values()) f.release();
    }
    await client?.close();
    await cluster?.close();
  }
}

interface Following {
  active: ActiveExecution;
  graph: RunGraph;
  progress: Progress;
  inbox: Inbox<Incoming>;
  address: string;
  /** The resources a step asks for that no worker has, or null. */
  unplaceable: (key: string) => Record<string, number> | null;
}

/**
 * Follows the run: hands steps to the graph as the bookkeeping makes them
 * (the static ones at once, copies of mapped steps as their items come,
 * collectors once what they collect has ended), and takes the events of the
 * steps and the end of each step's task, until every step has ended (or the
 * run is cancelled).
 */
async function* follow(ctx: ExecutionContext, f: Following): AsyncGenerator<RunEvent[]> {
  const { runId, plan } = ctx;
  const { active, graph, inbox } = f;
  const { started, ended } = f.progress;
  /** Steps whose task could not run for lack of an input, and steps the bookkeeping lets run. */
  const inputLost = new Map<string, Error>();
  const mayRun = new Set<string>();
  const endWith = (key: string, err: Error): RunEvent => {
    // A task that threw before the step ran (say, the code location would not import there): its own error.
    const error = err instanceof TaskError ? { name: err.remoteName, message: err.remoteMessage, stack: err.remoteStack } : serializeError(err);
    return event('STEP_FAILURE', runId, key, `step ${key} failed on the cluster: ${error.name}: ${error.message}`, { attempt: 0, error });
  };
  /** The events of this turn of the loop, yielded together at its end (an await per turn, not per event). */
  let out: RunEvent[] = [];
  // Steps no worker can run fail as they come, with the reason; those downstream never run.
  function offer(step: PlannedStep): void {
    const need = f.unplaceable(step.key);
    if (need === null) return graph.hold(step);
    const error = serializeError(new NoWorkerError(`step ${step.key} needs resources ${JSON.stringify(need)} (op tag ${RESOURCES_TAG}), and no worker of the cluster at ${f.address} has them`));
    const ev = event('STEP_FAILURE', runId, step.key, `step ${step.key} cannot run: ${error.message}`, { attempt: 0, error });
    ended.add(step.key);
    active.handle(ev);
    out.push(ev);
  }
  for (const step of plan.steps) offer(step);
  let copies = 0;
  let submissions = 0;
  while (true) {
    for (const s of active.ready()) {
      mayRun.add(s.key);
      // A collector, its inputs now known; or a step held until now.
      if (!graph.isSubmitted(s.key)) graph.hold(s);
    }
    // A collector whose items are all known goes now, before its copies end: the scheduler starts it when the last one does.
    for (const s of active.takeEarlyCollectors()) if (!graph.isSubmitted(s.key)) graph.hold(s);
    const made = plan.copies();
    while (copies < made.length) offer(made[copies++] as PlannedStep);
    const n = graph.submitReady();
    if (n > 0 && submissions++ === 0) out.push(ctx.engineEvent(`submitting ${n} step(s) to the scheduler at ${f.address}`));
    for (const ev of active.drainEvents()) {
      if (ev.stepKey !== null) ended.add(ev.stepKey);
      out.push(ev);
    }
    // A step allowed to run whose task cannot (its input was lost or could not be kept) fails with that reason.
    for (const [key, error] of inputLost) {
      if (!mayRun.has(key) || ended.has(key)) continue;
      inputLost.delete(key);
      ended.add(key);
      const ev = endWith(key, error);
      active.handle(ev);
      out.push(ev);
    }
    if (out.length > 0) {
      yield out;
      out = [];
    }
    if (active.isComplete || ctx.signal.aborted) return;
    if (inbox.size === 0) {
      await inbox.wait(null, ctx.signal);
      continue;
    }
    for (const item of inbox.drain()) {
      if ('ev' in item) {
        const parsed = stepEventSchema().safeParse(item.ev);
        if (!parsed.success) {
          out.push(ctx.engineEvent(`ignored a malformed step event from the cluster: ${parsed.error.issues[0]?.message ?? 'invalid'}`));
          continue;
        }
        const ev = parsed.data as RunEvent;
        const key = ev.stepKey as string;
        if (ev.runId !== runId || active.statusOf(key) === undefined) continue;
        if (ended.has(key)) {
          // Run again after its output was lost with a worker: said once, its events not repeated.
          if (ev.type === 'STEP_START') out.push(ctx.engineEvent(`step ${key} runs again on the cluster: its output was lost with a worker`, { step: key }));
          continue;
        }
        if (ev.type === 'STEP_START') {
          if (started.has(key)) out.push(ctx.engineEvent(`step ${key} started again on another worker: the worker running it was lost`, { step: key }));
          started.add(key);
        } else if (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE') {
          started.delete(key);
          ended.add(key);
        } else if (ev.type === 'STEP_UP_FOR_RETRY') started.delete(key);
        active.handle(ev);
        out.push(ev);
        continue;
      }
      // A step's task ended. Its events came first, so a step without an end here ended some other way.
      const key = item.step.key;
      if (ended.has(key)) continue;
      if (item.error === null) {
        ended.add(key);
        const ev = endWith(key, new WeftError('its task finished without reporting the end of the step'));
        active.handle(ev);
        out.push(ev);
      } else if (item.error.name === 'DependencyError') {
        // Upstream failed or skipped: the bookkeeping decides, unless it lets the step run after all.
        inputLost.set(key, item.error);
      } else {
        // The task could not run the step: workers lost while running it, the code location not importable, ...
        ended.add(key);
        started.delete(key);
        const ev = endWith(key, item.error);
        active.handle(ev);
        out.push(ev);
      }
    }
  }
}

/**
 * Puts the outputs of the run's succeeded steps into its result, fetched
 * from the workers holding them. A step's events come ahead of its task's
 * result, so the last steps' results may not have been reported yet: each
 * is waited for.
 */
async function* fetchOutputs(ctx: ExecutionContext, client: Client, futures: ReadonlyMap<string, Future>, succeeded: (step: string) => boolean): AsyncGenerator<RunEvent> {
  const ended: { step: string; future: Future }[] = [];
  for (const [step, f] of futures) if (succeeded(step)) ended.push({ step, future: f });
  await Promise.allSettled(ended.map((w) => w.future.done()));
  const wanted = ended.filter((w) => w.future.status === 'finished');
  if (wanted.length === 0) return;
  const t0 = performance.now();
  const values = await client.gather(wanted.map((w) => w.future));
  let i = 0;
  for (const w of wanted) {
    const v = values[i++];
    if (keepsRecord(ctx.plan.step(w.step).node.op)) for (const [name, value] of Object.entries(v as Record<string, unknown>)) ctx.setOutputValue(w.step, name, value);
    else ctx.setOutputValue(w.step, 'result', v);
  }
  yield ctx.engineEvent(`fetched the outputs of ${wanted.length} step(s) from the workers in ${Math.round(performance.now() - t0)} ms`);
}

/** The resources each step's op asks for with its `weft/resources` tag. */
function stepResources(steps: readonly PlannedStep[]): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const s of steps) {
    const r = jsonTag(s, RESOURCES_TAG, resourcesSchema(), 'a JSON object of positive amounts, like {"GPU": 1}');
    if (r) out.set(s.key, r);
  }
  return out;
}

/** Steps that ask for resources no worker has. */
function unplaceableSteps(steps: readonly PlannedStep[], resources: ReadonlyMap<string, Record<string, number>>, workers: readonly WorkerSummary[]): Set<string> {
  const out = new Set<string>();
  for (const s of steps) {
    const need = resources.get(s.key);
    if (need && !workers.some((w) => Object.entries(need).every(([r, n]) => (w.resources[r] ?? 0) >= n))) out.add(s.key);
  }
  return out;
}
