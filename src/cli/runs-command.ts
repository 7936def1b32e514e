/**
 * `weft runs`: the runs of the instance in WEFT_HOME, on every executor:
 * list, show, logs, cancel, delete, re-execute, submit to the run queue,
 * and launch (what the daemon starts for a queued run).
 */
import { ConfigError } from '../errors.ts';
import type { RunConfig } from '../jobs/definitions.ts';
import { eventForJson, type RunEvent } from '../jobs/events.ts';
import { cancelRun } from '../runs/cancel.ts';
import { RunNotFoundError } from '../runs/errors.ts';
import type { Instance } from '../runs/instance.ts';
import { failStaleRuns } from '../runs/monitor.ts';
import type { RunRecord } from '../runs/records.ts';
import { stepOutcomes } from '../runs/outcomes.ts';
import { isFinished, RUN_STATUSES, type RunStatus } from '../runs/status.ts';
import { eventLine, showRun, type ShowOptions } from './show-run.ts';

// What only re-executing, submitting and launching need (the job layer, the code location) loads with them: listing runs stays quick.
const heavy = async () => {
  const [{ loadDefinitions }, { moduleUrl }, { resolveRunConfig }, { reexecute }, { launchQueuedRun, submitRun }, { readRunConfig }] = await Promise.all([
    import('../jobs/repository.ts'),
    import('../jobs/location.ts'),
    import('../jobs/run-config.ts'),
    import('../runs/reexecute.ts'),
    import('../runs/queue.ts'),
    import('./run-job.ts'),
  ]);
  return { loadDefinitions, moduleUrl, resolveRunConfig, reexecute, launchQueuedRun, submitRun, readRunConfig };
};

/** A run by its id or a unique start of it (at least 4 characters). */
export async function findRun(instance: Instance, given: string): Promise<RunRecord> {
  const exact = await instance.storage.getRun(given);
  if (exact) return exact;
  if (given.length >= 4) {
    const found = await instance.storage.listRuns({ runIdPrefix: given, limit: 2 });
    if (found.length === 1 && found[0]) return found[0];
    if (found.length > 1) throw new ConfigError(`${given} is the start of several run ids: give more of it`);
  }
  throw new RunNotFoundError(given);
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function took(run: RunRecord): string {
  if (run.startedAt === null) return '';
  const ms = (run.endedAt ?? Date.now()) - run.startedAt;
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)}s` : ms < 3_600_000 ? `${(ms / 1000).toFixed(0)}s` : `${(ms / 3_600_000).toFixed(1)}h`;
}

/** A run as `--json` prints it. */
export function runForJson(run: RunRecord): Record<string, unknown> {
  return {
    runId: run.runId,
    job: run.job,
    status: run.status,
    tags: run.tags,
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    endedAt: iso(run.endedAt),
    updatedAt: iso(run.updatedAt),
    executor: run.executor,
    location: run.location,
    parentRunId: run.parentRunId,
    rootRunId: run.rootRunId,
    stepKeys: run.stepKeys,
    launcher: run.launcher,
  };
}

export function parseStatuses(text: string | undefined): RunStatus[] | undefined {
  if (text === undefined) return undefined;
  return text.split(',').map((s) => {
    const up = s.trim().toUpperCase();
    if (!(RUN_STATUSES as readonly string[]).includes(up)) throw new ConfigError(`--status: ${s} is not a run status (${RUN_STATUSES.join(', ')})`);
    return up as RunStatus;
  });
}

export function parseTags(given: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of given) {
    const i = t.indexOf('=');
    if (i <= 0) throw new ConfigError(`--tag: expected KEY=VALUE (got '${t}')`);
    out[t.slice(0, i)] = t.slice(i + 1);
  }
  return out;
}

export async function listRuns(instance: Instance, opts: { statuses?: RunStatus[]; job?: string; tags: Record<string, string>; limit: number; json: boolean }): Promise<void> {
  await failStaleRuns(instance);
  const runs = await instance.storage.listRuns({ ...(opts.statuses ? { statuses: opts.statuses } : {}), ...(opts.job !== undefined ? { job: opts.job } : {}), tags: opts.tags, limit: opts.limit });
  if (opts.json) return void console.log(JSON.stringify(runs.map(runForJson)));
  if (runs.length === 0) return void console.log(`(no runs in ${instance.storage.where})`);
  console.log(`${'RUN'.padEnd(36)}  ${'STATUS'.padEnd(9)}  ${'JOB'.padEnd(20)}  ${'CREATED'.padEnd(19)}  ${'TOOK'.padStart(7)}  TAGS`);
  for (const r of runs) {
    const tags = Object.entries(r.tags)
      .filter(([k]) => !k.startsWith('weft/'))
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const lineage = r.parentRunId ? ` (re-executes ${r.parentRunId.slice(0, 8)})` : '';
    console.log(`${r.runId.padEnd(36)}  ${r.status.padEnd(9)}  ${r.job.padEnd(20)}  ${new Date(r.createdAt).toISOString().slice(0, 19).replace('T', ' ')}  ${took(r).padStart(7)}  ${tags}${lineage}`);
  }
}

export interface StepRow {
  step: string;
  status: string;
  attempts: number;
  startedAt: string | null;
  seconds: number | null;
}

/** Each step of a run with where it stands, from the run's events. */
export function stepRows(run: RunRecord, events: readonly RunEvent[]): StepRow[] {
  const keys: string[] = [];
  const seen = new Set<string>();
  const add = (k: string): void => {
    if (seen.has(k)) return;
    seen.add(k);
    keys.push(k);
  };
  // The plan's steps, as the run said when it started (steps that never ran are among them).
  const planned = run.stepKeys ?? events.find((e) => e.type === 'RUN_START')?.data?.['stepKeys'];
  if (Array.isArray(planned)) for (const k of planned) if (typeof k === 'string') add(k);
  for (const ev of events) if (ev.stepKey !== null && ev.type.startsWith('STEP_')) add(ev.stepKey);
  const outcomes = stepOutcomes(keys, events);
  const times = new Map<string, { start: number | null; end: number | null; attempts: number }>();
  for (const ev of events) {
    if (ev.stepKey === null) continue;
    const t = times.get(ev.stepKey) ?? { start: null, end: null, attempts: 0 };
    if (ev.type === 'STEP_START') {
      t.start ??= ev.timestamp;
      t.attempts++;
    }
    if (ev.type === 'STEP_SUCCESS' || ev.type === 'STEP_FAILURE' || ev.type === 'STEP_SKIPPED') t.end = ev.timestamp;
    times.set(ev.stepKey, t);
  }
  const running = !isFinished(run.status);
  return keys.map((step) => {
    const t = times.get(step);
    let status: string = outcomes.get(step) ?? 'not-run';
    if (status === 'interrupted' && running) status = 'running';
    if (status === 'not-run' && running) status = 'waiting';
    return { step, status, attempts: t?.attempts ?? 0, startedAt: iso(t?.start ?? null), seconds: t?.start != null && t.end != null ? (t.end - t.start) / 1000 : null };
  });
}

export async function showRunRecord(instance: Instance, given: string, json: boolean): Promise<void> {
  await failStaleRuns(instance);
  const run = await findRun(instance, given);
  const events = (await instance.storage.events(run.runId)).map((e) => e.event);
  const steps = stepRows(run, events);
  const failure = [...events].reverse().find((e) => e.type === 'RUN_FAILURE');
  if (json) return void console.log(JSON.stringify({ ...runForJson(run), steps, ...(failure ? { failure: failure.message } : {}) }));
  const rows: [string, string][] = [
    ['run', run.runId],
    ['job', run.job],
    ['status', run.status],
    ['executor', run.executor ?? ''],
    ['location', run.location ?? '(none: not re-executable from the command line)'],
    ['created', new Date(run.createdAt).toISOString()],
    ['took', took(run)],
  ];
  if (run.parentRunId) rows.push(['re-executes', run.parentRunId], ['root', run.rootRunId ?? run.parentRunId]);
  const tags = Object.entries(run.tags).map(([k, v]) => `${k}=${v}`);
  if (tags.length > 0) rows.push(['tags', tags.join(' ')]);
  if (failure) rows.push(['failure', failure.message]);
  for (const [k, v] of rows) console.log(`${k.padEnd(12)}${v}`);
  console.log('');
  const width = Math.max(4, ...steps.map((s) => s.step.length));
  console.log(`${'STEP'.padEnd(width)}  ${'STATUS'.padEnd(11)}  ATTEMPTS  ${'SECONDS'.padStart(8)}`);
  for (const s of steps) console.log(`${s.step.padEnd(width)}  ${s.status.padEnd(11)}  ${String(s.attempts).padStart(8)}  ${s.seconds === null ? ''.padStart(8) : s.seconds.toFixed(3).padStart(8)}`);
}

/** Prints a run's events; with `follow`, goes on printing new ones until the run has finished. */
export async function printLogs(instance: Instance, given: string, opts: { follow: boolean; json: boolean; signal?: AbortSignal }): Promise<void> {
  const run = await findRun(instance, given);
  let after = 0;
  for (;;) {
    const batch = await instance.storage.events(run.runId, { after, limit: 10_000 });
    for (const e of batch) {
      process.stdout.write(opts.json ? `${JSON.stringify(eventForJson(e.event))}\n` : `${eventLine(e.event)}\n`);
      after = e.id;
    }
    if (batch.length === 10_000) continue;
    if (!opts.follow || opts.signal?.aborted) return;
    const now = await instance.storage.getRun(run.runId);
    if (!now || isFinished(now.status)) {
      // The last events may have landed after the read above.
      const rest = await instance.storage.events(run.runId, { after });
      for (const e of rest) process.stdout.write(opts.json ? `${JSON.stringify(eventForJson(e.event))}\n` : `${eventLine(e.event)}\n`);
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function cancelCommand(instance: Instance, given: string): Promise<void> {
  const run = await findRun(instance, given);
  const outcome = await cancelRun(instance.storage, run.runId, 'weft runs cancel');
  if (outcome === 'canceled') console.log(`run ${run.runId} was queued: canceled`);
  else if (outcome === 'canceling') console.log(`run ${run.runId} is canceling: its launcher stops its steps`);
  else console.log(`run ${run.runId} is already ${outcome.already}`);
}

export async function deleteCommand(instance: Instance, given: string, force: boolean): Promise<void> {
  const run = await findRun(instance, given);
  if (!isFinished(run.status) && run.status !== 'QUEUED' && !force) throw new ConfigError(`run ${run.runId} is ${run.status}: cancel it first (weft runs cancel), or delete it anyway with --force`);
  await instance.storage.deleteRun(run.runId);
  await instance.outputStore.deleteRun(run.runId);
  console.log(`deleted run ${run.runId} and its outputs`);
}

export async function reexecuteCommand(instance: Instance, given: string, opts: ShowOptions & { fromFailure: boolean; steps: string | undefined; tags: Record<string, string> }): Promise<number> {
  if (opts.fromFailure === (opts.steps !== undefined)) throw new ConfigError('weft runs reexecute needs --from-failure or --steps SELECTION (one of them)');
  const run = await findRun(instance, given);
  instance.prepareToLaunch();
  const { reexecute } = await heavy();
  return showRun(opts, run.stepKeys?.length ?? 0, (shown) => reexecute(instance, run.runId, { ...shown, tags: opts.tags, ...(opts.fromFailure ? { fromFailure: true } : { stepSelection: [opts.steps as string] }) }));
}

export async function submitCommand(instance: Instance, opts: { module: string; job: string; configFile: string | undefined; tags: Record<string, string>; json: boolean }): Promise<void> {
  const { loadDefinitions, readRunConfig, resolveRunConfig, submitRun, moduleUrl } = await heavy();
  const defs = await loadDefinitions(opts.module);
  const job = defs.findJob(opts.job);
  if (!job) throw new ConfigError(`--job: ${opts.module} has no job ${opts.job} (jobs: ${defs.jobNames.join(', ') || 'none'})`);
  const runConfig: RunConfig = readRunConfig(opts.configFile) ?? {};
  // Checked now, not when the daemon starts it: a mistake is the submitter's to hear.
  resolveRunConfig(job, defs.executorFor(job), runConfig);
  const run = await submitRun(instance, { job: opts.job, location: defs.location ?? moduleUrl(opts.module), runConfig, tags: { ...job.tags, ...opts.tags } });
  if (opts.json) console.log(JSON.stringify(runForJson(run)));
  else console.log(`queued run ${run.runId} of job ${run.job}`);
}

export async function launchCommand(instance: Instance, runId: string, show: ShowOptions): Promise<number> {
  instance.prepareToLaunch();
  const { launchQueuedRun } = await heavy();
  return launchQueuedRun(instance, runId, (steps, go) => showRun(show, steps, go));
}
