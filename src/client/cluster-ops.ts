/**
 * What a client asks of the cluster beyond its own tasks: published
 * datasets, where results are, copies and retirements, functions run on
 * every worker, restarts, figures, the adaptive target, and calls on
 * coordination primitives. Each is a request to the scheduler (or to the
 * workers) and its reply, checked; Client exposes them as its methods.
 */
import { decode, encodeOwned } from '../protocol/codec.ts';
import type { ClientToScheduler, SchedulerToClient, SyncRequest, WorkerMetrics, WorkerSummary, WorkerToPeer } from '../protocol/messages.ts';
import { RunError, WeftError } from '../errors.ts';
import { fnDef, type TaskFn } from './graph.ts';
import type { PeerRequest } from '../protocol/peers.ts';

/** A call on a coordination primitive, as Client.sync takes it. */
export type SyncCall = Omit<SyncRequest, 'op' | 'id'>;

/** What these operations need of a client: requests to the scheduler and to workers. */
export interface SchedulerLink {
  /** Sends the request made with its id; resolves with the reply. `urgent`: out at the end of this turn (see Connection.send). */
  ask(make: (id: number) => ClientToScheduler, urgent?: boolean): Promise<SchedulerToClient>;
  /** Sends a message no reply answers (nothing while the connection is lost). */
  tell(msg: ClientToScheduler): void;
  requestWorker(address: string, msg: PeerRequest): Promise<WorkerToPeer>;
}

/** The reply, if it is the op expected. */
function expect<Op extends SchedulerToClient['op']>(reply: SchedulerToClient, op: Op, what: string): Extract<SchedulerToClient, { op: Op }> {
  if (reply.op !== op) throw new WeftError(`unexpected reply to ${what}: ${reply.op}`);
  return reply as Extract<SchedulerToClient, { op: Op }>;
}

export async function datasetRequest(l: SchedulerLink, make: (id: number) => ClientToScheduler): Promise<{ keys?: string[] | undefined; names?: string[] | undefined }> {
  const reply = expect(await l.ask(make), 'dataset-reply', 'a dataset request');
  if (reply.error) throw new WeftError(reply.error);
  return reply;
}

export async function whoHas(l: SchedulerLink, keys: string[]): Promise<Record<string, string[]>> {
  const reply = expect(await l.ask((id) => ({ op: 'who-has-all', id, keys })), 'who-has-all-reply', 'who-has-all');
  const out: Record<string, string[]> = {};
  keys.forEach((k, i) => (out[k] = reply.holders[i] ?? []));
  return out;
}

export async function replicate(l: SchedulerLink, keys: string[], n: number): Promise<void> {
  const reply = expect(await l.ask((id) => ({ op: 'replicate', id, keys, n })), 'moved', 'replicate');
  if (reply.failed.length > 0) throw new WeftError(`could not replicate ${reply.failed.length} of the results: ${reply.failed.slice(0, 5).join('; ')}`);
}

export async function retireWorkers(l: SchedulerLink, names: readonly string[]): Promise<{ retired: string[]; failed: string[] }> {
  const reply = expect(await l.ask((id) => ({ op: 'retire-workers', id, names: [...names] })), 'moved', 'retire-workers');
  return { retired: reply.retired ?? [], failed: reply.failed };
}

export async function workers(l: SchedulerLink): Promise<WorkerSummary[]> {
  const reply = await l.ask((id) => ({ op: 'workers', id }));
  return reply.op === 'workers-reply' ? reply.workers : [];
}

export async function run<T>(l: SchedulerLink, fn: TaskFn, args: unknown[]): Promise<Record<string, T>> {
  const def = fnDef(fn);
  const bytes = encodeOwned(args);
  const replies = await Promise.all((await workers(l)).map(async (w) => [w.name, await l.requestWorker(w.address, { op: 'run', fn: def, args: bytes })] as const));
  const out: Record<string, T> = {};
  for (const [name, r] of replies) {
    if (r.op !== 'run-reply') throw new WeftError(`unexpected reply to run from worker ${name}: ${r.op}`);
    if (r.error) throw new RunError(name, r.error);
    out[name] = (r.value ? decode(r.value) : undefined) as T;
  }
  return out;
}

export async function restart(l: SchedulerLink): Promise<void> {
  expect(await l.ask((id) => ({ op: 'restart', id })), 'restart-reply', 'restart');
}

/** The dashboard's record since `since` (ms since the epoch), as JSON. */
export async function reportData(l: SchedulerLink, since: number): Promise<string> {
  const reply = expect(await l.ask((id) => ({ op: 'report-data', id, since })), 'report-data-reply', 'report-data');
  if (reply.error || reply.json === undefined) throw new WeftError(`no performance report: ${reply.error ?? 'no data'}`);
  return reply.json;
}

/** The scheduler process's figures (client.schedulerStats). */
export interface SchedulerStats {
  /** Its longest event-loop stall since the last reset, in ms. */
  maxStallMs: number;
  rss: number;
  heapUsed: number;
  /** Tasks it knows. */
  tasks: number;
  /** Task runs sent to workers so far (a task sent again after its worker died counts again; so does one stopped before it ran). */
  taskRuns: number;
  /** Results computed by a task run so far: a run stopped, lost with its worker, or whose value a client gave back (restore) does not count. */
  tasksComputed: number;
}

export async function schedulerStats(l: SchedulerLink, opts: { reset?: boolean; gc?: boolean }): Promise<SchedulerStats> {
  const reply = expect(await l.ask((id) => ({ op: 'process-stats', id, ...(opts.reset ? { reset: true } : {}), ...(opts.gc ? { gc: true } : {}) })), 'process-stats-reply', 'process-stats');
  const { maxStallMs, rss, heapUsed, tasks, taskRuns, tasksComputed } = reply;
  return { maxStallMs, rss, heapUsed, tasks, taskRuns: taskRuns ?? 0, tasksComputed: tasksComputed ?? 0 };
}

export async function workerMetrics(l: SchedulerLink): Promise<Record<string, WorkerMetrics>> {
  const out: Record<string, WorkerMetrics> = {};
  for (const w of await workers(l)) {
    const reply = await l.requestWorker(w.address, { op: 'metrics' });
    if (reply.op === 'metrics-reply') out[w.address] = reply.metrics;
  }
  return out;
}

export async function adaptiveTarget(l: SchedulerLink, targetDuration: number): Promise<number> {
  return expect(await l.ask((id) => ({ op: 'adaptive-target', id, targetDuration })), 'adaptive-target-reply', 'adaptive-target').workers;
}

export async function sync(l: SchedulerLink, call: SyncCall): Promise<{ ok: boolean; value?: Uint8Array | undefined; key?: string | undefined; size?: number | undefined }> {
  const r = expect(await l.ask((id) => ({ op: 'sync', id, ...call }), true), 'sync-reply', `a ${call.kind} call`);
  if (r.error !== undefined) throw new WeftError(`${call.kind} ${call.name}: ${r.error}`);
  return r;
}
