/**
 * Run storage on real databases: SQLite files and a PostgreSQL server the
 * tests start (Debian's postgresql, initdb into a temporary folder). The
 * same checks run on both; then what only one of them can show (a file
 * truncated mid-way, two processes writing one file), migrations, and
 * re-execution in this process and with the multiprocess executor.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobExecutionResult, RunEvent } from '../src/index.ts';
import { executeJob } from '../src/jobs/run.ts';
import { multiprocessExecutor } from '../src/jobs/executors/multiprocess.ts';
import type { ExecutorDefinition } from '../src/jobs/executor.ts';
import { ReexecutionError, RunStorageError, SchemaVersionError } from '../src/runs/errors.ts';
import { Instance } from '../src/runs/instance.ts';
import { DEFAULT_CONFIG, instanceConfigSchema } from '../src/runs/config.ts';
import { cancelRun } from '../src/runs/cancel.ts';
import { launchQueuedRun, runsToStart, submitReexecution } from '../src/runs/queue.ts';
import { reexecute } from '../src/runs/reexecute.ts';
import { selectSteps } from '../src/jobs/selection.ts';
import { LATEST_VERSION, migrate, schemaVersion } from '../src/runs/sql/migrations.ts';
import { openStorageAt, type StorageLocation } from '../src/runs/sql/open.ts';
import { openSqlite } from '../src/runs/sql/sqlite.ts';
import { openSqlStorage } from '../src/runs/sql/storage.ts';
import type { RunStorage } from '../src/runs/storage.ts';
import defs, { mendJob } from './fixtures/step-jobs.ts';
import { startPostgres, type TestPostgres } from './helpers/postgres.ts';
import { expectMendedFromFailure } from './helpers/reexecution.ts';

const MODULE = new URL('./fixtures/step-jobs.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'weft-runs-'));
let pg: TestPostgres;
let dbs = 0;

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(async () => {
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function ev(type: RunEvent['type'], runId: string, stepKey: string | null = null, at = Date.now()): RunEvent {
  return { type, runId, stepKey, timestamp: at, message: `${type}${stepKey ? ` ${stepKey}` : ''}` };
}

function newRun(runId: string, over: Partial<Parameters<RunStorage['createRun']>[0]> = {}): Parameters<RunStorage['createRun']>[0] {
  return { runId, job: 'j', location: null, tags: {}, runConfig: {}, inputValues: null, parentRunId: null, rootRunId: null, stepKeys: null, executor: 'in_process', launcher: 'test', createdAt: Date.now(), ...over };
}

const backends: [string, () => StorageLocation][] = [
  ['SQLite', () => ({ sqlite: join(dir, `runs-${++dbs}.db`) })],
  ['PostgreSQL', () => ({ postgres: pg.createDatabase(`weft_${++dbs}`) })],
];

describe.each(backends)('run storage in %s', (_name, where) => {
  let storage: RunStorage;
  beforeAll(async () => {
    storage = await openStorageAt(where());
  });
  afterAll(() => storage?.close());

  it('keeps a run with its tags, and its status follows its events', async () => {
    await storage.createRun(newRun('r1', { tags: { team: 'a', env: 'prod' } }), ev('RUN_STARTING', 'r1'));
    expect((await storage.getRun('r1'))?.status).toBe('STARTING');
    expect(await storage.appendEvents('r1', [ev('RUN_START', 'r1'), ev('STEP_START', 'r1', 's'), { ...ev('STEP_OUTPUT', 'r1', 's'), output: 'result', value: 41, bytes: new Uint8Array([1]) }, ev('STEP_SUCCESS', 'r1', 's')])).toBe('STARTED');
    expect(await storage.appendEvents('r1', [ev('RUN_SUCCESS', 'r1')])).toBe('SUCCESS');
    const run = await storage.getRun('r1');
    expect(run).toMatchObject({ status: 'SUCCESS', job: 'j', tags: { team: 'a', env: 'prod' }, executor: 'in_process' });
    expect(run?.startedAt).not.toBeNull();
    expect(run?.endedAt).not.toBeNull();
    const events = await storage.events('r1');
    expect(events.map((e) => e.event.type)).toEqual(['RUN_STARTING', 'RUN_START', 'STEP_START', 'STEP_OUTPUT', 'STEP_SUCCESS', 'RUN_SUCCESS']);
    expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort((a, b) => a - b));
    // Output values live in the output store, never in the event log.
    expect(events[3]?.event).not.toHaveProperty('value');
    expect(events[3]?.event).not.toHaveProperty('bytes');
    expect((await storage.events('r1', { after: events[2]?.id })).map((e) => e.event.type)).toEqual(['STEP_OUTPUT', 'STEP_SUCCESS', 'RUN_SUCCESS']);
  });

  it('gives back every field of an event as it was (but output values); log data JSON cannot hold as near as it can', async () => {
    await storage.createRun(newRun('f1'), ev('RUN_STARTING', 'f1'));
    const cyclic: Record<string, unknown> = { name: 'me' };
    cyclic['me'] = cyclic;
    const full: RunEvent[] = [
      { ...ev('LOG', 'f1', 's'), message: 'tab\there, "quoted"\nnext line, ünïcode', level: 'warn', data: { n: 1, nested: { a: [1, 'x', null] } }, attempt: 2, pid: 77 },
      { ...ev('STEP_UP_FOR_RETRY', 'f1', 's'), error: { name: 'RangeError', message: 'too far', stack: 'RangeError: too far\n    at op' }, retryInSeconds: 1.5, attempt: 0 },
      { ...ev('STEP_OUTPUT', 'f1', 's'), output: 'result', stored: true, value: 3 },
      { ...ev('LOG', 'f1', 's'), level: 'info', data: { big: 10n, self: cyclic } },
    ];
    await storage.appendEvents('f1', full);
    const back = (await storage.events('f1')).slice(1).map((e) => e.event);
    expect(back.slice(0, 3)).toEqual(full.slice(0, 3).map(({ value: _v, ...rest }) => rest));
    expect(back[3]?.data).toEqual({ big: '10', self: { name: 'me', me: '[Circular]' } });
  });

  it('a finished run stays finished: a late event is kept but does not move it', async () => {
    await storage.createRun(newRun('r2'), ev('RUN_STARTING', 'r2'));
    await storage.appendEvents('r2', [ev('RUN_START', 'r2'), ev('RUN_FAILURE', 'r2')]);
    expect(await storage.appendEvents('r2', [ev('RUN_SUCCESS', 'r2')])).toBe('FAILURE');
    expect((await storage.events('r2')).length).toBe(4);
  });

  it('lists newest first, by status, job and tags, a page at a time', async () => {
    const t = Date.now() + 10_000;
    for (let i = 0; i < 5; i++) {
      await storage.createRun(newRun(`l${i}`, { job: i % 2 === 0 ? 'even' : 'odd', tags: { n: String(i), kind: 'listed' }, createdAt: t + i }), ev('RUN_ENQUEUED', `l${i}`));
    }
    expect((await storage.listRuns({ tags: { kind: 'listed' } })).map((r) => r.runId)).toEqual(['l4', 'l3', 'l2', 'l1', 'l0']);
    expect((await storage.listRuns({ job: 'even', limit: 2 })).map((r) => r.runId)).toEqual(['l4', 'l2']);
    expect((await storage.listRuns({ tags: { kind: 'listed', n: '3' } })).map((r) => r.runId)).toEqual(['l3']);
    expect((await storage.listRuns({ tags: { kind: 'listed' }, before: 'l2' })).map((r) => r.runId)).toEqual(['l1', 'l0']);
    expect((await storage.listRuns({ statuses: ['QUEUED'], tags: { kind: 'listed' } })).length).toBe(5);
    expect((await storage.countByStatus(['QUEUED'])).get('QUEUED')).toBeGreaterThanOrEqual(5);
  });

  it('a cancel and the daemon claiming a queued run do not race: canceled, or claimed and then canceling', async () => {
    for (let i = 0; i < 20; i++) {
      const id = `q${i}`;
      await storage.createRun(newRun(id), ev('RUN_ENQUEUED', id));
      const [claimed, outcome] = await Promise.all([storage.transition(id, ev('RUN_STARTING', id), ['QUEUED']), cancelRun(storage, id)]);
      const status = (await storage.getRun(id))?.status;
      if (claimed) {
        expect(outcome).toBe('canceling');
        expect(status).toBe('CANCELING');
      } else {
        expect(outcome).toBe('canceled');
        expect(status).toBe('CANCELED');
      }
      expect((await storage.events(id)).length).toBe(claimed ? 3 : 2);
    }
    expect(await cancelRun(storage, 'q0')).toEqual({ already: expect.stringMatching(/CANCEL/) });
    await expect(cancelRun(storage, 'nope')).rejects.toThrow(/no run nope/);
  });

  it('deletes a run with its tags and events', async () => {
    await storage.createRun(newRun('d1', { tags: { a: 'b' } }), ev('RUN_STARTING', 'd1'));
    expect(await storage.deleteRun('d1')).toBe(true);
    expect(await storage.getRun('d1')).toBeNull();
    expect(await storage.events('d1')).toEqual([]);
    expect(await storage.deleteRun('d1')).toBe(false);
  });

  it('migrates an empty database of the older schema, and refuses one newer than the code', async () => {
    const loc = where();
    const db = 'sqlite' in loc ? await openSqlite(loc.sqlite) : await (await import('../src/runs/sql/postgres.ts')).openPostgres(loc.postgres);
    expect(await migrate(db, 1)).toBe(1);
    expect(await schemaVersion(db)).toBe(1);
    const storage2 = await openSqlStorage(db);
    expect(await schemaVersion(db)).toBe(LATEST_VERSION);
    await storage2.createRun(newRun('m1'), ev('RUN_STARTING', 'm1'));
    expect(await storage2.heartbeat('m1', 'me', 5)).toBe('STARTING');
    await db.run('UPDATE weft_schema SET version = ?', [LATEST_VERSION + 1]);
    await storage2.close();
    await expect(openStorageAt(loc)).rejects.toThrow(SchemaVersionError);
    await expect(openStorageAt(loc)).rejects.toThrow(new RegExp(`schema version ${LATEST_VERSION + 1}, newer than this weft knows \\(${LATEST_VERSION}\\)`));
  });

  it('migrates a database of schema 2 with runs and events in it: every event kept, in order, and the runs go on', async () => {
    const loc = where();
    const db = 'sqlite' in loc ? await openSqlite(loc.sqlite) : await (await import('../src/runs/sql/postgres.ts')).openPostgres(loc.postgres);
    expect(await migrate(db, 2)).toBe(2);
    // Two runs written as weft with schema 2 wrote them: events keyed by run id, interleaved.
    for (const id of ['old-a', 'old-b']) {
      await db.run('INSERT INTO runs (run_id, job, location, status, run_config, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [id, 'j', null, 'STARTED', '{}', 1, 1]);
      await db.run('INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?)', [id, 'team', id]);
    }
    for (let i = 0; i < 6; i++) {
      const id = i % 2 === 0 ? 'old-a' : 'old-b';
      await db.run('INSERT INTO events (run_id, type, step_key, timestamp, body) VALUES (?, ?, ?, ?, ?)', [id, 'LOG', 's', i, JSON.stringify({ message: `${id} ${i}` })]);
    }
    const storage2 = await openSqlStorage(db);
    expect(await schemaVersion(db)).toBe(LATEST_VERSION);
    const a = await storage2.events('old-a');
    expect(a.map((e) => e.event.message)).toEqual(['old-a 0', 'old-a 2', 'old-a 4']);
    expect((await storage2.events('old-b')).map((e) => e.event.message)).toEqual(['old-b 1', 'old-b 3', 'old-b 5']);
    // New events go after the old, a new run gets a number of its own, and deleting a run takes its events only.
    await storage2.appendEvents('old-a', [ev('RUN_SUCCESS', 'old-a')]);
    const after = await storage2.events('old-a', { after: a[2]?.id });
    expect(after.map((e) => e.event.type)).toEqual(['RUN_SUCCESS']);
    expect(after[0]?.id).toBeGreaterThan(a[2]?.id ?? Infinity);
    await storage2.createRun(newRun('new-c'), ev('RUN_STARTING', 'new-c'));
    await storage2.appendEvents('new-c', [ev('RUN_START', 'new-c')]);
    expect((await storage2.events('new-c')).map((e) => e.event.type)).toEqual(['RUN_STARTING', 'RUN_START']);
    expect(await storage2.deleteRun('old-b')).toBe(true);
    expect(await storage2.events('old-b')).toEqual([]);
    expect((await storage2.events('old-a')).length).toBe(4);
    expect((await storage2.getRun('old-a'))?.status).toBe('SUCCESS');
    await storage2.close();
  });
});

describe('run storage in PostgreSQL', () => {
  it('a server that is down, or a database that does not exist, gives a clear error', async () => {
    const { freePort } = await import('./helpers/redis.ts');
    const port = await freePort();
    await expect(openStorageAt({ postgres: `postgres://postgres@127.0.0.1:${port}/weft` })).rejects.toThrow(new RegExp(`run storage: PostgreSQL at postgres://postgres@127\\.0\\.0\\.1:${port}/weft refused the connection`));
    await expect(openStorageAt({ postgres: pg.url.replace(/\/postgres$/, '/nope') })).rejects.toThrow(/has no such database/);
    await expect(openStorageAt({ postgres: `postgres://postgres:secret@127.0.0.1:${port}/weft` })).rejects.toThrow(/postgres:\*\*\*@/);
  });
});

describe('run storage in SQLite files', () => {
  it('a foreign database, a file that is not a database and a truncated one each give a clear error', async () => {
    const foreign = join(dir, 'foreign.db');
    const f = await openSqlite(foreign);
    await f.run('CREATE TABLE invoices (id INTEGER)');
    await f.close();
    await expect(openStorageAt({ sqlite: foreign })).rejects.toThrow(/is not weft's run storage \(tables: invoices\)/);

    const text = join(dir, 'notes.db');
    writeFileSync(text, 'these are my notes, not a database '.repeat(200));
    await expect(openStorageAt({ sqlite: text })).rejects.toThrow(/notes\.db is not a SQLite database/);

    // A run storage with runs and events, cut in the middle of the file.
    const good = join(dir, 'good.db');
    const s = await openStorageAt({ sqlite: good });
    for (let i = 0; i < 200; i++) {
      await s.createRun(newRun(`t${i}`, { tags: { padding: 'x'.repeat(200) } }), ev('RUN_STARTING', `t${i}`));
      await s.appendEvents(`t${i}`, Array.from({ length: 10 }, () => ({ ...ev('LOG', `t${i}`, 'step'), message: 'y'.repeat(300) })));
    }
    await s.close();
    const cut = join(dir, 'cut.db');
    copyFileSync(good, cut);
    truncateSync(cut, Math.floor(statSync(cut).size / 2));
    const err = await (async () => {
      const t = await openStorageAt({ sqlite: cut });
      try {
        for (let i = 0; i < 200; i++) await t.events(`t${i}`);
        await t.listRuns({ limit: 1000 });
        return null;
      } finally {
        await t.close().catch(() => undefined);
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunStorageError);
    expect((err as Error).message).toMatch(/cut\.db is damaged/);
  });

  it("the launcher's connection never stops for a checkpoint; the run writer's copies the log into the file once idle", async () => {
    const file = join(dir, 'checkpoints.db');
    const launcher = await openStorageAt({ sqlite: file }, 'elsewhere');
    const writer = await openStorageAt({ sqlite: file }, 'when-idle');
    try {
      const before = statSync(file).size;
      await launcher.createRun(newRun('c1'), ev('RUN_STARTING', 'c1'));
      // 6 MiB of events: past the 1,000 pages at which SQLite's own rule would checkpoint.
      for (let i = 0; i < 30; i++) await launcher.appendEvents('c1', Array.from({ length: 100 }, () => ({ ...ev('LOG', 'c1', 's'), message: 'z'.repeat(2000) })));
      expect(statSync(file).size).toBe(before);
      expect(statSync(`${file}-wal`).size).toBeGreaterThan(6 << 20);
      await writer.appendEvents('c1', [ev('RUN_START', 'c1')]);
      await vi.waitFor(() => expect(statSync(file).size).toBeGreaterThan(5 << 20), { timeout: 5000, interval: 20 });
      expect((await launcher.events('c1')).length).toBe(3002);
    } finally {
      await writer.close();
      await launcher.close();
    }
  });

  it('two processes writing runs and events into one file at once lose nothing', async () => {
    const file = join(dir, 'shared.db');
    await (await openStorageAt({ sqlite: file })).close();
    const writer = `
      import { openStorageAt } from ${JSON.stringify(new URL('../src/runs/sql/open.ts', import.meta.url).href)};
      const s = await openStorageAt({ sqlite: process.argv[2] });
      const who = process.argv[3];
      for (let i = 0; i < 100; i++) {
        const runId = who + '-' + i;
        const at = Date.now();
        await s.createRun({ runId, job: 'j', location: null, tags: { who }, runConfig: {}, inputValues: null, parentRunId: null, rootRunId: null, stepKeys: null, executor: 'x', launcher: who, createdAt: at }, { type: 'RUN_STARTING', runId, stepKey: null, timestamp: at, message: 'go' });
        await s.appendEvents(runId, Array.from({ length: 20 }, (_, k) => ({ type: 'LOG', runId, stepKey: 's', timestamp: at, message: String(k) })));
        await s.appendEvents(runId, [{ type: 'RUN_START', runId, stepKey: null, timestamp: at, message: '' }, { type: 'RUN_SUCCESS', runId, stepKey: null, timestamp: at, message: '' }]);
      }
      await s.close();
    `;
    const script = join(dir, 'writer.mts');
    writeFileSync(script, writer);
    const procs = ['a', 'b'].map((who) => spawn(process.execPath, ['--import', 'tsx', script, file, who], { stdio: ['ignore', 'inherit', 'inherit'], cwd: process.cwd() }));
    const codes = await Promise.all(procs.map(async (p) => (await once(p, 'exit'))[0]));
    expect(codes).toEqual([0, 0]);
    const s = await openStorageAt({ sqlite: file });
    try {
      for (const who of ['a', 'b']) {
        const runs = await s.listRuns({ tags: { who }, limit: 1000 });
        expect(runs.length).toBe(100);
        expect(runs.every((r) => r.status === 'SUCCESS')).toBe(true);
        for (const r of runs.slice(0, 10)) expect((await s.events(r.runId)).map((e) => e.event.message).slice(1, 21)).toEqual(Array.from({ length: 20 }, (_, k) => String(k)));
      }
    } finally {
      await s.close();
    }
  }, 120_000);
});

describe('step selection', () => {
  const job = mendJob;
  it.each([
    [['gate'], ['gate']],
    [['*gate'], ['base', 'double', 'gate']],
    [['+gate'], ['double', 'gate']],
    [['double+'], ['double', 'gate']],
    [['double*'], ['double', 'gate', 'report']],
    [['base', 'side'], ['base', 'side']],
    [['++report, side'], ['double', 'gate', 'report', 'side']],
  ])('%j selects %j', (sel, want) => {
    expect(selectSteps(job, sel)).toEqual(want);
  });
  it('a clause that names no step says so, with the steps there are', () => {
    expect(() => selectSteps(job, ['*nope'])).toThrow(/"\*nope" names no step of job mend \(steps: base, double, gate, report, side\)/);
  });
});

describe('re-execution', () => {
  let instance: Instance;
  beforeAll(async () => {
    instance = await Instance.open({ home: join(dir, 'home') });
  });
  afterAll(() => instance?.close());

  it('from failure in this process: the failed step and those after it run, the rest load from the first run', async () => {
    await expectMendedFromFailure(
      instance,
      join(dir, 'flag-in-process'),
      (runConfig) => mendJob.executeInProcess({ instance, outputStore: instance.outputStore, runConfig }),
      (runId) => reexecute(instance, runId, { fromFailure: true, job: mendJob }),
    );
  });

  it('from failure with the multiprocess executor, taking the job from its code location', async () => {
    const exec = multiprocessExecutor as ExecutorDefinition;
    await expectMendedFromFailure(
      instance,
      join(dir, 'flag-multiprocess'),
      (runConfig) => executeJob(defs.getJob('mend'), exec, { module: MODULE, jobName: 'mend' }, { instance, runConfig }),
      (runId) => reexecute(instance, runId, { fromFailure: true, executorDef: exec }),
    );
  });

  it('a step selection runs just those steps; a re-execution of a re-execution loads from the run that produced each output', async () => {
    const flag = join(dir, 'flag-selection');
    const { first, second } = await expectMendedFromFailure(
      instance,
      flag,
      (runConfig) => executeJob(defs.getJob('mend'), defs.executorFor(defs.getJob('mend')), { module: MODULE, jobName: 'mend' }, { instance, runConfig }),
      (runId) => reexecute(instance, runId, { fromFailure: true }),
    );
    // report again: its input (gate's output) is in the second run, double's in the first.
    const third = await reexecute(instance, second.runId, { stepSelection: ['report'] });
    expect(third.success).toBe(true);
    expect(third.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey)).toEqual(['report']);
    expect(third.outputForNode('report')).toBe('answer: 42');
    const stored = await instance.storage.getRun(third.runId);
    expect(stored?.rootRunId).toBe(first.runId);
    expect(stored?.parentRunId).toBe(second.runId);
  });

  it("a queued re-execution (the dashboard's button) is planned when the daemon starts it", async () => {
    const flag = join(dir, 'flag-queued');
    writeFileSync(flag, 'up');
    const exec = multiprocessExecutor as ExecutorDefinition;
    const first = await executeJob(defs.getJob('mend'), exec, { module: MODULE, jobName: 'mend' }, { instance, runConfig: { ops: { gate: { config: { flag } } } } });
    expect(first.success).toBe(false);
    rmSync(flag);
    const queued = await submitReexecution(instance, first.runId, { fromFailure: true });
    expect(queued).toMatchObject({ status: 'QUEUED', parentRunId: first.runId, rootRunId: first.runId });
    expect(await instance.storage.transition(queued.runId, ev('RUN_STARTING', queued.runId), ['QUEUED'])).toBe(true);
    let result: JobExecutionResult | null = null;
    const code = await launchQueuedRun(instance, queued.runId, async (_steps, go) => {
      result = await go({});
      return result.success ? 0 : 1;
    });
    expect(code).toBe(0);
    const r = result as unknown as JobExecutionResult;
    expect(r.allEvents.filter((e) => e.type === 'STEP_START').map((e) => e.stepKey)).toEqual(['gate', 'report']);
    expect(r.outputForNode('report')).toBe('answer: 42');
    expect((await instance.storage.getRun(queued.runId))?.status).toBe('SUCCESS');
  });

  it('refuses what it cannot do, saying why', async () => {
    const inMemory = await mendJob.executeInProcess({ instance, runConfig: { ops: { gate: { config: { flag: join(dir, 'absent') } } } } });
    await expect(reexecute(instance, inMemory.runId, { fromFailure: true, job: mendJob })).rejects.toThrow(/kept its outputs in memory/);
    await expect(reexecute(instance, 'no-such-run', { fromFailure: true })).rejects.toThrow(/no run no-such-run in run storage/);
    const ok = await executeJob(defs.getJob('mend'), multiprocessExecutor as ExecutorDefinition, { module: MODULE, jobName: 'mend' }, { instance, runConfig: { ops: { gate: { config: { flag: join(dir, 'absent') } } } } });
    await expect(reexecute(instance, ok.runId, { fromFailure: true })).rejects.toThrow(ReexecutionError);
    await expect(reexecute(instance, ok.runId, { fromFailure: true })).rejects.toThrow(/did not fail \(it is SUCCESS\)/);
    await expect(reexecute(instance, ok.runId, { stepSelection: ['repor'] })).rejects.toThrow(/names no step of job mend/);
    expect(readFileSync(join(instance.home, 'runs.db')).length).toBeGreaterThan(0);
  });
});

describe('the run queue picks', () => {
  const run = (id: string, tags: Record<string, string> = {}, createdAt = 0): Parameters<typeof runsToStart>[0][number] => ({ ...newRun(id, { tags, createdAt }), status: 'QUEUED', updatedAt: 0, startedAt: null, endedAt: null, heartbeatAt: null });
  it('under maxConcurrentRuns, higher weft/run-priority first, then oldest', () => {
    const queued = [run('a', {}, 1), run('b', { 'weft/run-priority': '3' }, 2), run('c', {}, 0)];
    expect(runsToStart(queued, [run('x')], { maxConcurrentRuns: 3, tagConcurrencyLimits: [] }).map((r) => r.runId)).toEqual(['b', 'c']);
  });
  it('under tag limits: a value, any value, and per unique value', () => {
    const limits = [
      { key: 'db', value: 'main', limit: 1 },
      { key: 'team', value: { applyLimitPerUniqueValue: true as const }, limit: 1 },
      { key: 'gpu', limit: 2 },
    ];
    const queued = [run('m1', { db: 'main' }, 1), run('m2', { db: 'main' }, 2), run('o1', { db: 'other' }, 3), run('t1', { team: 'a' }, 4), run('t2', { team: 'a' }, 5), run('t3', { team: 'b' }, 6), run('g1', { gpu: 'x' }, 7), run('g2', { gpu: 'y' }, 8)];
    expect(runsToStart(queued, [run('busy', { gpu: 'z' })], { maxConcurrentRuns: 100, tagConcurrencyLimits: limits }).map((r) => r.runId)).toEqual(['m1', 'o1', 't1', 't3', 'g1']);
  });
});

describe('the instance config', () => {
  it('without weft.yaml is what the schema gives for an empty file', () => {
    expect(instanceConfigSchema().parse(undefined)).toEqual(DEFAULT_CONFIG);
  });
  it('a mistake in weft.yaml is named by its path', async () => {
    const h = join(dir, 'bad-config');
    mkdirSync(h, { recursive: true });
    writeFileSync(join(h, 'weft.yaml'), 'runQueue:\n  maxConcurentRuns: 3\n  dequeueInterval: soon\n');
    await expect(Instance.open({ home: h })).rejects.toThrow(/weft\.yaml is not a valid instance config: runQueue\.dequeueInterval: "soon" is not a duration .*runQueue: unknown key "maxConcurentRuns" \(did you mean "maxConcurrentRuns"\?\)/);
    writeFileSync(join(h, 'weft.yaml'), 'runQueue: [unclosed\n');
    await expect(Instance.open({ home: h })).rejects.toThrow(/weft\.yaml is not valid YAML/);
  });
});
