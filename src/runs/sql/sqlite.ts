/**
 * SQLite under run storage: one file (default WEFT_HOME/runs.db) through
 * better-sqlite3. WAL, so readers never wait for the writer and a process
 * killed mid-write leaves the last committed state; a busy timeout, so two
 * processes writing at once wait their turn instead of failing; foreign keys
 * on, so deleting a run deletes its tags and events with it.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { optionalPackage } from '../../util/optional.ts';
import { RunStorageError } from '../errors.ts';
import type { Row, SqlDriver, SqlTx } from './driver.ts';
import type BetterSqlite3 from 'better-sqlite3';
import type { Database, Statement } from 'better-sqlite3';


/** How long a write waits for another process's transaction before failing. */
const BUSY_TIMEOUT_MS = 10_000;

/**
 * Who copies the write-ahead log into the database file (a checkpoint: a
 * few milliseconds, two fsyncs).
 * - `auto`: SQLite, in whichever connection commits once the log passes
 *   1,000 pages (4 MiB).
 * - `when-idle`: this connection, once it has written nothing for
 *   IDLE_CHECKPOINT_MS, or as it commits past MAX_WAL_PAGES. The run writer
 *   thread's: a run's events then go in at the speed of their inserts, not
 *   stopping for a checkpoint every few runs (bench/README.md, run storage).
 * - `elsewhere`: never this connection (another in the process checkpoints
 *   when idle, and the last to close one checkpoints as it closes).
 */
export type Checkpoints = 'auto' | 'when-idle' | 'elsewhere';
const IDLE_CHECKPOINT_MS = 100;
/** 16 MiB. */
const MAX_WAL_PAGES = 4096;

export async function openSqlite(path: string, checkpoints: Checkpoints = 'auto'): Promise<SqlDriver> {
  // Required, not imported: better-sqlite3 is CommonJS, and an import of it first has Node scan its source for named exports.
  const BetterSqlite = await optionalPackage(['better-sqlite3'], 'run storage in SQLite', async () => createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3);
  mkdirSync(dirname(path), { recursive: true });
  let db: Database;
  try {
    db = new BetterSqlite(path, { timeout: BUSY_TIMEOUT_MS });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    if (checkpoints !== 'auto') db.pragma(`wal_autocheckpoint = ${checkpoints === 'when-idle' ? MAX_WAL_PAGES : 0}`);
  } catch (err) {
    throw storageError(path, err);
  }
  return new SqliteDriver(db, path, checkpoints === 'when-idle');
}

/** A SQLite error as a RunStorageError naming the file and what is wrong with it. */
function storageError(path: string, err: unknown): Error {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code !== 'string' || !e.code.startsWith('SQLITE_')) return err instanceof Error ? err : new Error(String(err));
  const what =
    e.code === 'SQLITE_NOTADB'
      ? 'is not a SQLite database'
      : e.code.startsWith('SQLITE_CORRUPT')
        ? 'is damaged (a truncated or overwritten file?)'
        : e.code.startsWith('SQLITE_BUSY')
          ? `stayed locked by another process for ${BUSY_TIMEOUT_MS / 1000}s`
          : e.code.startsWith('SQLITE_CANTOPEN')
            ? 'cannot be opened'
            : e.code.startsWith('SQLITE_READONLY')
              ? 'is read-only here'
              : 'failed';
  return new RunStorageError(`run storage ${path} ${what}: ${String(e.message)} (${e.code})`);
}

class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite';
  private readonly statements = new Map<string, Statement>();
  /** Transactions one at a time: each waits for the one before. */
  private queue: Promise<unknown> = Promise.resolve();
  private inTransaction = false;

  /** when-idle: the checkpoint waiting for the connection to go quiet (its timer restarts with each write). */
  private readonly idle: NodeJS.Timeout | null;

  constructor(
    private readonly db: Database,
    readonly where: string,
    checkpointWhenIdle: boolean,
  ) {
    this.idle = checkpointWhenIdle ? setTimeout(() => this.checkpoint(), IDLE_CHECKPOINT_MS) : null;
    this.idle?.unref();
  }

  /** After a write: a checkpoint once the connection goes quiet (SQLite makes one as it commits past MAX_WAL_PAGES). */
  private written(): void {
    this.idle?.refresh();
  }

  private checkpoint(): void {
    // PASSIVE: copies what no reader still needs, waiting for nobody; a failure here is the next write's to report.
    if (this.db.open && !this.db.inTransaction) {
      try {
        this.db.pragma('wal_checkpoint(PASSIVE)');
      } catch {
        // The database is busy or gone: the next write or checkpoint tries again.
      }
    }
  }

  private prepare(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private allNow(sql: string, params: readonly unknown[]): Row[] {
    try {
      const st = this.prepare(sql);
      return st.reader ? (st.all(...params.map(bind)) as Row[]) : (st.run(...params.map(bind)), []);
    } catch (err) {
      throw storageError(this.where, err);
    }
  }

  private runNow(sql: string, params: readonly unknown[]): number {
    try {
      return this.prepare(sql).run(...params.map(bind)).changes;
    } catch (err) {
      throw storageError(this.where, err);
    }
  }

  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    if (this.inTransaction) await this.queue;
    return this.allNow(sql, params);
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    if (this.inTransaction) await this.queue;
    const changes = this.runNow(sql, params);
    this.written();
    return changes;
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const tx: SqlTx = {
      all: async (sql, params = []) => this.allNow(sql, params),
      run: async (sql, params = []) => this.runNow(sql, params),
    };
    const go = async (): Promise<T> => {
      this.inTransaction = true;
      try {
        // IMMEDIATE: the write lock is taken now (waiting up to the busy timeout), not half-way through.
        this.runNow('BEGIN IMMEDIATE', []);
        try {
          const out = await fn(tx);
          this.runNow('COMMIT', []);
          this.written();
          return out;
        } catch (err) {
          if (this.db.inTransaction) this.db.exec('ROLLBACK');
          throw err;
        }
      } finally {
        this.inTransaction = false;
      }
    };
    const p = this.queue.then(go, go);
    this.queue = p.catch(() => undefined);
    return p;
  }

  async tables(): Promise<string[]> {
    return this.allNow("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", []).map((r) => String(r['name']));
  }

  async close(): Promise<void> {
    await this.queue;
    if (this.idle) clearTimeout(this.idle);
    this.db.close();
  }
}

/** SQLite takes numbers, strings, bytes and null; booleans become 0/1. */
function bind(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return v;
}
