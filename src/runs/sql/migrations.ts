/**
 * The run storage schema, as the migrations that build it: a database at
 * version n is brought to the latest by running migrations n+1 and on, each
 * in its own transaction with the version it reaches. A database newer than
 * this code is refused (SchemaVersionError), never written to.
 */
import { RunStorageError, SchemaVersionError } from '../errors.ts';
import { types, type SqlDriver, type SqlTx } from './driver.ts';

interface Migration {
  version: number;
  what: string;
  statements: (d: SqlDriver['dialect']) => string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    what: 'runs, their tags and their events',
    statements: (d) => {
      const t = types(d);
      return [
        `CREATE TABLE runs (
          run_id TEXT PRIMARY KEY,
          job TEXT NOT NULL,
          location TEXT,
          status TEXT NOT NULL,
          run_config TEXT NOT NULL,
          input_values ${t.blob},
          parent_run_id TEXT,
          root_run_id TEXT,
          step_keys TEXT,
          executor TEXT,
          created_at ${t.bigint} NOT NULL,
          updated_at ${t.bigint} NOT NULL,
          started_at ${t.bigint},
          ended_at ${t.bigint}
        )`,
        'CREATE INDEX runs_by_created ON runs (created_at, run_id)',
        'CREATE INDEX runs_by_status ON runs (status, created_at)',
        'CREATE INDEX runs_by_job ON runs (job, created_at)',
        `CREATE TABLE run_tags (
          run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
          key TEXT NOT NULL,
          value TEXT NOT NULL,
          PRIMARY KEY (run_id, key)
        )`,
        'CREATE INDEX run_tags_by_value ON run_tags (key, value)',
        `CREATE TABLE events (
          id ${t.id},
          run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
          type TEXT NOT NULL,
          step_key TEXT,
          timestamp ${t.bigint} NOT NULL,
          body TEXT NOT NULL
        )`,
        'CREATE INDEX events_by_run ON events (run_id, id)',
      ];
    },
  },
  {
    version: 2,
    what: 'launchers: who runs a run, and its heartbeat (the run monitor)',
    statements: (d) => {
      const t = types(d);
      return ['ALTER TABLE runs ADD COLUMN launcher TEXT', `ALTER TABLE runs ADD COLUMN heartbeat_at ${t.bigint}`, 'CREATE INDEX runs_by_heartbeat ON runs (status, heartbeat_at)'];
    },
  },
  {
    version: 3,
    what: "events keyed by a run's number, not its id",
    // Each event's row and index entry carried its run's 36-character id: a third of what writing an event cost SQLite. A run now has a
    // number (run_key), which its events carry instead. Events lose their foreign key too (7% of an insert): storage adds a run's events
    // only after finding the run, in the same transaction, and deletes them with it. SQLite's ids lose AUTOINCREMENT (a table of its own
    // updated per row): a new id is still above every id there is, so a run's events still read in order (bench/README.md, run storage).
    statements: (d) =>
      d === 'sqlite'
        ? [
            'ALTER TABLE runs ADD COLUMN run_key INTEGER',
            'UPDATE runs SET run_key = rowid',
            'CREATE UNIQUE INDEX runs_by_key ON runs (run_key)',
            'CREATE TABLE events_v3 (id INTEGER PRIMARY KEY, run_key INTEGER NOT NULL, type TEXT NOT NULL, step_key TEXT, timestamp INTEGER NOT NULL, body TEXT NOT NULL)',
            'INSERT INTO events_v3 (id, run_key, type, step_key, timestamp, body) SELECT e.id, r.run_key, e.type, e.step_key, e.timestamp, e.body FROM events e JOIN runs r ON r.run_id = e.run_id ORDER BY e.id',
            'DROP TABLE events',
            'ALTER TABLE events_v3 RENAME TO events',
            'CREATE INDEX events_by_run ON events (run_key, id)',
          ]
        : [
            'ALTER TABLE runs ADD COLUMN run_key BIGSERIAL',
            'CREATE UNIQUE INDEX runs_by_key ON runs (run_key)',
            'CREATE TABLE events_v3 (id BIGSERIAL PRIMARY KEY, run_key BIGINT NOT NULL, type TEXT NOT NULL, step_key TEXT, timestamp BIGINT NOT NULL, body TEXT NOT NULL)',
            'INSERT INTO events_v3 (id, run_key, type, step_key, timestamp, body) SELECT e.id, r.run_key, e.type, e.step_key, e.timestamp, e.body FROM events e JOIN runs r ON r.run_id = e.run_id',
            "SELECT setval(pg_get_serial_sequence('events_v3', 'id'), COALESCE((SELECT MAX(id) FROM events_v3), 0) + 1, false)",
            'DROP TABLE events',
            'ALTER TABLE events_v3 RENAME TO events',
            'CREATE INDEX events_by_run ON events (run_key, id)',
          ],
  },
];

export const LATEST_VERSION = MIGRATIONS.reduce((m, x) => Math.max(m, x.version), 0);

/** The table that says which version a database is at: one row. */
const VERSION_TABLE = 'weft_schema';

/** The schema version of the database (0 for an empty one); refuses a database that is not weft's. */
export async function schemaVersion(db: SqlDriver): Promise<number> {
  const tables = await db.tables();
  if (!tables.includes(VERSION_TABLE)) {
    if (tables.length === 0) return 0;
    const shown = tables.slice(0, 5).join(', ') + (tables.length > 5 ? ', ...' : '');
    throw new RunStorageError(`${db.where} holds a database that is not weft's run storage (tables: ${shown}); point weft at another file or database`);
  }
  const rows = await db.all(`SELECT version FROM ${VERSION_TABLE}`);
  const v = Number(rows[0]?.['version']);
  if (rows.length !== 1 || !Number.isInteger(v) || v < 0) throw new RunStorageError(`${db.where}: the ${VERSION_TABLE} table is damaged (expected one row with a version number)`);
  return v;
}

/** Brings the database to `upTo` (default: the latest), one migration per transaction. */
export async function migrate(db: SqlDriver, upTo = LATEST_VERSION): Promise<number> {
  let v = await schemaVersion(db);
  if (v > LATEST_VERSION) throw new SchemaVersionError(`${db.where} is at run storage schema version ${v}, newer than this weft knows (${LATEST_VERSION}): upgrade weft, or point it at another database`);
  if (v === 0 && upTo > 0) {
    await db.transaction(async (tx) => {
      await lockSchema(db, tx);
      await tx.run(`CREATE TABLE IF NOT EXISTS ${VERSION_TABLE} (version INTEGER NOT NULL)`);
      const rows = await tx.all(`SELECT version FROM ${VERSION_TABLE}`);
      if (rows.length === 0) await tx.run(`INSERT INTO ${VERSION_TABLE} (version) VALUES (0)`);
    });
    v = await schemaVersion(db);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= v || m.version > upTo) continue;
    await db.transaction(async (tx) => {
      // Two processes may open a new database at once: the second finds the migration done.
      await lockSchema(db, tx);
      const now = Number((await tx.all(`SELECT version FROM ${VERSION_TABLE}`))[0]?.['version']);
      if (now >= m.version) return;
      for (const s of m.statements(db.dialect)) await tx.run(s);
      await tx.run(`UPDATE ${VERSION_TABLE} SET version = ?`, [m.version]);
    });
    v = m.version;
  }
  return v;
}

/**
 * Migrations of one database run one at a time. SQLite's transactions take
 * the write lock as they begin (sqlite.ts); PostgreSQL's take this lock.
 */
async function lockSchema(db: SqlDriver, tx: SqlTx): Promise<void> {
  if (db.dialect === 'postgres') await tx.all('SELECT pg_advisory_xact_lock(?)', [SCHEMA_LOCK]);
}

/** Any number, the same in every weft: the key of the migration lock. */
const SCHEMA_LOCK = 0x77656674;
