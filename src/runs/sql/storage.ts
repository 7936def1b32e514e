/**
 * Run storage in SQL, written once for SQLite and PostgreSQL (driver.ts).
 * Events arrive in batches (recorder.ts) and each batch is one transaction:
 * its events and the status they lead to are written together or not at all.
 */
import type { RunConfig } from '../../jobs/definitions.ts';
import type { RunEvent } from '../../jobs/events.ts';
import { RunStorageError } from '../errors.ts';
import { eventColumns, eventOf, type EventColumns, type NewRun, type RunFilter, type RunRecord, type StoredEvent } from '../records.ts';
import { IN_PROGRESS_STATUSES, RUN_STATUSES, statusAfter, statusesBefore, type RunStatus } from '../status.ts';
import type { RunStorage } from '../storage.ts';
import type { Row, SqlDriver, SqlTx } from './driver.ts';
import { migrate } from './migrations.ts';

const RUN_COLUMNS = 'run_id, job, location, status, run_config, input_values, parent_run_id, root_run_id, step_keys, executor, launcher, created_at, updated_at, started_at, ended_at, heartbeat_at';
/**
 * Events go in many rows to an INSERT: on PostgreSQL a round trip per event
 * would be its cost, and SQLite too takes them faster so than one by one
 * (a call into it per statement). Its prepared statements are kept by
 * text, so there are at most this many.
 */
const ROWS_PER_INSERT = 200;

export async function openSqlStorage(db: SqlDriver): Promise<SqlRunStorage> {
  try {
    await migrate(db);
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return new SqlRunStorage(db);
}

export class SqlRunStorage implements RunStorage {
  constructor(readonly db: SqlDriver) {}

  get where(): string {
    return this.db.where;
  }

  async createRun(run: NewRun, first: RunEvent): Promise<RunRecord> {
    const status = statusAfter(null, first.type);
    if (!status) throw new RunStorageError(`a run starts with RUN_ENQUEUED or RUN_STARTING, not ${first.type}`);
    const now = first.timestamp;
    await this.db.transaction(async (tx) => {
      const made = await tx.all(`INSERT INTO runs (${RUN_COLUMNS}, run_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ${this.nextRunKey}) RETURNING run_key`, [
        run.runId,
        run.job,
        run.location,
        status,
        JSON.stringify(run.runConfig),
        run.inputValues,
        run.parentRunId,
        run.rootRunId,
        run.stepKeys ? JSON.stringify(run.stepKeys) : null,
        run.executor,
        run.launcher,
        run.createdAt,
        now,
        null,
        null,
        status === 'STARTING' ? now : null,
      ]);
      for (const [k, v] of Object.entries(run.tags)) await tx.run('INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?)', [run.runId, k, v]);
      await this.insertEvents(tx, Number(made[0]?.['run_key']), [first]);
    });
    return { ...run, status, updatedAt: now, startedAt: null, endedAt: null, heartbeatAt: status === 'STARTING' ? now : null };
  }

  async getRun(runId: string): Promise<RunRecord | null> {
    const rows = await this.db.all(`SELECT ${RUN_COLUMNS} FROM runs WHERE run_id = ?`, [runId]);
    if (rows.length === 0) return null;
    return (await this.withTags(rows))[0] ?? null;
  }

  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.statuses && filter.statuses.length > 0) {
      where.push(`status IN (${filter.statuses.map(() => '?').join(', ')})`);
      params.push(...filter.statuses);
    }
    if (filter.job !== undefined) {
      where.push('job = ?');
      params.push(filter.job);
    }
    if (filter.runIds) {
      if (filter.runIds.length === 0) return [];
      where.push(`run_id IN (${filter.runIds.map(() => '?').join(', ')})`);
      params.push(...filter.runIds);
    }
    if (filter.runIdPrefix !== undefined) {
      where.push("run_id LIKE ? ESCAPE '\\'");
      params.push(`${filter.runIdPrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    for (const [k, v] of Object.entries(filter.tags ?? {})) {
      where.push('run_id IN (SELECT run_id FROM run_tags WHERE key = ? AND value = ?)');
      params.push(k, v);
    }
    if (filter.before !== undefined) {
      const b = await this.db.all('SELECT created_at FROM runs WHERE run_id = ?', [filter.before]);
      const at = b[0]?.['created_at'];
      if (at === undefined) return [];
      where.push('(created_at < ? OR (created_at = ? AND run_id < ?))');
      params.push(at, at, filter.before);
    }
    params.push(Math.max(0, Math.floor(filter.limit ?? 100)));
    const rows = await this.db.all(`SELECT ${RUN_COLUMNS} FROM runs${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, run_id DESC LIMIT ?`, params);
    return this.withTags(rows);
  }

  appendEvents(runId: string, events: readonly RunEvent[]): Promise<RunStatus> {
    return this.appendColumns(runId, events.map(eventColumns));
  }

  /** appendEvents for events already serialized (the run writer thread gets them so: writer.ts). */
  appendColumns(runId: string, events: readonly EventColumns[]): Promise<RunStatus> {
    return this.db.transaction(async (tx) => {
      const run = await this.runOf(tx, runId);
      let status = run.status;
      const times: { started?: number; ended?: number } = {};
      for (const ev of events) {
        const next = statusAfter(status, ev.type);
        if (next === null) continue;
        status = next;
        if (next === 'STARTED') times.started = ev.timestamp;
        if (next === 'SUCCESS' || next === 'FAILURE' || next === 'CANCELED') times.ended = ev.timestamp;
      }
      await this.insertColumns(tx, run.key, events);
      const at = events.at(-1)?.timestamp ?? Date.now();
      await tx.run('UPDATE runs SET status = ?, updated_at = ?, started_at = COALESCE(?, started_at), ended_at = COALESCE(?, ended_at) WHERE run_key = ?', [status, at, times.started ?? null, times.ended ?? null, run.key]);
      return status;
    });
  }

  async transition(runId: string, ev: RunEvent, only?: readonly RunStatus[]): Promise<boolean> {
    const from = statusesBefore(ev.type).filter((st) => !only || only.includes(st));
    const to = statusAfter(from[0] ?? null, ev.type);
    if (from.length === 0 || to === null) throw new RunStorageError(`${ev.type} does not move a stored run`);
    return this.db.transaction(async (tx) => {
      const ended = to === 'SUCCESS' || to === 'FAILURE' || to === 'CANCELED' ? ev.timestamp : null;
      const starting = to === 'STARTING' ? ev.timestamp : null;
      const changed = await tx.all(`UPDATE runs SET status = ?, updated_at = ?, ended_at = COALESCE(?, ended_at), heartbeat_at = COALESCE(?, heartbeat_at) WHERE run_id = ? AND status IN (${from.map(() => '?').join(', ')}) RETURNING run_key`, [to, ev.timestamp, ended, starting, runId, ...from]);
      if (changed.length === 0) return false;
      await this.insertEvents(tx, Number(changed[0]?.['run_key']), [ev]);
      return true;
    });
  }

  async events(runId: string, opts: { after?: number; limit?: number } = {}): Promise<StoredEvent[]> {
    const rows = await this.db.all('SELECT id, type, step_key, timestamp, body FROM events WHERE run_key = (SELECT run_key FROM runs WHERE run_id = ?) AND id > ? ORDER BY id LIMIT ?', [runId, opts.after ?? 0, opts.limit ?? 1_000_000]);
    return rows.map((r) => ({ id: Number(r['id']), event: parseEvent(this.where, runId, r) }));
  }

  async heartbeat(runId: string, launcher: string, at: number): Promise<RunStatus | null> {
    await this.db.run('UPDATE runs SET heartbeat_at = ?, launcher = ? WHERE run_id = ?', [at, launcher, runId]);
    const rows = await this.db.all('SELECT status FROM runs WHERE run_id = ?', [runId]);
    return rows[0] ? toStatus(this.where, rows[0]['status']) : null;
  }

  async staleRuns(before: number): Promise<RunRecord[]> {
    const rows = await this.db.all(`SELECT ${RUN_COLUMNS} FROM runs WHERE status IN (${IN_PROGRESS_STATUSES.map(() => '?').join(', ')}) AND heartbeat_at < ? ORDER BY created_at`, [...IN_PROGRESS_STATUSES, before]);
    return this.withTags(rows);
  }

  async countByStatus(statuses: readonly RunStatus[]): Promise<Map<RunStatus, number>> {
    const out = new Map<RunStatus, number>(statuses.map((s) => [s, 0]));
    if (statuses.length === 0) return out;
    const rows = await this.db.all(`SELECT status, COUNT(*) AS n FROM runs WHERE status IN (${statuses.map(() => '?').join(', ')}) GROUP BY status`, [...statuses]);
    for (const r of rows) out.set(toStatus(this.where, r['status']), Number(r['n']));
    return out;
  }

  async deleteRun(runId: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Events have no foreign key (migrations.ts, version 3): they go here. Tags cascade, and go first for a database without foreign keys.
      await tx.run('DELETE FROM events WHERE run_key = (SELECT run_key FROM runs WHERE run_id = ?)', [runId]);
      await tx.run('DELETE FROM run_tags WHERE run_id = ?', [runId]);
      return (await tx.run('DELETE FROM runs WHERE run_id = ?', [runId])) > 0;
    });
  }

  close(): Promise<void> {
    return this.db.close();
  }

  /** A run's status and number (its events' key), the run locked until the transaction ends; a run that is not there is an error. */
  private async runOf(tx: SqlTx, runId: string): Promise<{ status: RunStatus; key: number }> {
    const rows = await tx.all(`SELECT status, run_key FROM runs WHERE run_id = ?${this.db.dialect === 'postgres' ? ' FOR UPDATE' : ''}`, [runId]);
    if (!rows[0]) throw new RunStorageError(`no run ${runId} in ${this.where} to add events to`);
    return { status: toStatus(this.where, rows[0]['status']), key: Number(rows[0]['run_key']) };
  }

  /** A new run's number: SQLite's the next above all (a transaction there holds the database's write lock), PostgreSQL's from its sequence. */
  private get nextRunKey(): string {
    return this.db.dialect === 'sqlite' ? '(SELECT COALESCE(MAX(run_key), 0) + 1 FROM runs)' : 'DEFAULT';
  }

  private insertEvents(tx: SqlTx, runKey: number, events: readonly RunEvent[]): Promise<void> {
    return this.insertColumns(tx, runKey, events.map(eventColumns));
  }

  private async insertColumns(tx: SqlTx, runKey: number, events: readonly EventColumns[]): Promise<void> {
    const per = ROWS_PER_INSERT;
    for (let i = 0; i < events.length; i += per) {
      const chunk = events.slice(i, i + per);
      const params: unknown[] = [];
      for (const c of chunk) params.push(runKey, c.type, c.stepKey, c.timestamp, c.body);
      await tx.run(`INSERT INTO events (run_key, type, step_key, timestamp, body) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}`, params);
    }
  }

  private async withTags(rows: Row[]): Promise<RunRecord[]> {
    const runs = rows.map((r) => toRecord(this.where, r));
    if (runs.length === 0) return runs;
    const byId = new Map(runs.map((r) => [r.runId, r]));
    const tags = await this.db.all(`SELECT run_id, key, value FROM run_tags WHERE run_id IN (${runs.map(() => '?').join(', ')})`, runs.map((r) => r.runId));
    for (const t of tags) {
      const run = byId.get(String(t['run_id']));
      if (run) run.tags[String(t['key'])] = String(t['value']);
    }
    return runs;
  }
}

function toStatus(where: string, v: unknown): RunStatus {
  if (typeof v === 'string' && (RUN_STATUSES as readonly string[]).includes(v)) return v as RunStatus;
  throw new RunStorageError(`${where}: a run has status ${JSON.stringify(v)}, which weft does not know`);
}

function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

function str(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

function json<T>(where: string, runId: string, what: string, v: unknown): T {
  try {
    return JSON.parse(String(v)) as T;
  } catch {
    throw new RunStorageError(`${where}: the ${what} of run ${runId} is damaged (not JSON)`);
  }
}

function toRecord(where: string, r: Row): RunRecord {
  const runId = String(r['run_id']);
  const iv = r['input_values'];
  return {
    runId,
    job: String(r['job']),
    location: str(r['location']),
    status: toStatus(where, r['status']),
    tags: {},
    runConfig: json<RunConfig>(where, runId, 'run config', r['run_config']),
    inputValues: iv === null || iv === undefined ? null : new Uint8Array(iv as Uint8Array),
    parentRunId: str(r['parent_run_id']),
    rootRunId: str(r['root_run_id']),
    stepKeys: r['step_keys'] === null || r['step_keys'] === undefined ? null : json<string[]>(where, runId, 'step list', r['step_keys']),
    executor: str(r['executor']),
    launcher: str(r['launcher']),
    createdAt: Number(r['created_at']),
    updatedAt: Number(r['updated_at']),
    startedAt: num(r['started_at']),
    endedAt: num(r['ended_at']),
    heartbeatAt: num(r['heartbeat_at']),
  };
}

function parseEvent(where: string, runId: string, row: Row): RunEvent {
  const body = json<Record<string, unknown>>(where, runId, 'event log', row['body']);
  const type = row['type'];
  if (typeof body !== 'object' || body === null || typeof type !== 'string' || typeof body['message'] !== 'string') throw new RunStorageError(`${where}: an event of run ${runId} is damaged`);
  return eventOf(runId, { type, stepKey: row['step_key'] === null ? null : String(row['step_key']), timestamp: Number(row['timestamp']) }, body);
}
