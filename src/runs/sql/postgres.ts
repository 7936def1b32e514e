/**
 * PostgreSQL under run storage, through `pg`: for a team whose launchers and
 * daemon run on several machines. A small pool; each transaction holds one
 * connection from BEGIN to COMMIT. 64-bit integers (times, event ids) come
 * back as numbers (all fit: milliseconds and counters stay below 2^53).
 */
import { optionalPackage } from '../../util/optional.ts';
import { RunStorageError } from '../errors.ts';
import type { Row, SqlDriver, SqlTx } from './driver.ts';
import type { Pool, PoolClient } from 'pg';


const CONNECT_TIMEOUT_MS = 10_000;
const INT8_OID = 20;

export async function openPostgres(url: string): Promise<SqlDriver> {
  const pg = await optionalPackage(['pg'], 'run storage in PostgreSQL', () => import('pg'));
  const { Pool, types } = pg.default;
  const where = `PostgreSQL at ${redact(url)}`;
  const pool = new Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8_OID && format !== 'binary' ? (v: string) => Number(v) : types.getTypeParser(oid, format as 'text'))) as typeof types.getTypeParser },
  });
  // An idle connection that breaks (the server restarts) must not crash the process: the next query reports it.
  pool.on('error', () => undefined);
  const driver = new PostgresDriver(pool, where);
  await driver.all('SELECT 1');
  return driver;
}

/** The URL without its password. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(a URL that does not parse)';
  }
}

/** Placeholders as PostgreSQL writes them: ? becomes $1, $2, ... */
const converted = new Map<string, string>();
function dollars(sql: string): string {
  let out = converted.get(sql);
  if (out === undefined) {
    let n = 0;
    out = sql.replace(/\?/g, () => `$${++n}`);
    converted.set(sql, out);
  }
  return out;
}

function storageError(where: string, err: unknown): Error {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const why: Record<string, string> = {
    ECONNREFUSED: 'refused the connection: is the server running, on that host and port?',
    ENOTFOUND: 'names a host that does not resolve',
    ETIMEDOUT: 'did not answer in time',
    ECONNRESET: 'closed the connection',
    '28P01': 'refused the password',
    '28000': 'refused the user',
    '3D000': 'has no such database',
  };
  const known = why[code];
  if (known) return new RunStorageError(`run storage: ${where} ${known} (${String(e.message)})`);
  if (/timeout exceeded when trying to connect|Connection terminated/i.test(String(e.message))) return new RunStorageError(`run storage: ${where} cannot be reached: ${String(e.message)}`);
  return err instanceof Error ? err : new Error(String(err));
}

class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres';

  constructor(
    private readonly pool: Pool,
    readonly where: string,
  ) {}

  private async query(on: Pool | PoolClient, sql: string, params: readonly unknown[]): Promise<{ rows: Row[]; rowCount: number }> {
    try {
      const r = await on.query(dollars(sql), params.map((v) => (v === undefined ? null : v)));
      return { rows: r.rows as Row[], rowCount: r.rowCount ?? 0 };
    } catch (err) {
      throw storageError(this.where, err);
    }
  }

  async all(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return (await this.query(this.pool, sql, params)).rows;
  }

  async run(sql: string, params: readonly unknown[] = []): Promise<number> {
    return (await this.query(this.pool, sql, params)).rowCount;
  }

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw storageError(this.where, err);
    }
    const tx: SqlTx = {
      all: async (sql, params = []) => (await this.query(client, sql, params)).rows,
      run: async (sql, params = []) => (await this.query(client, sql, params)).rowCount,
    };
    let broken = false;
    try {
      await this.query(client, 'BEGIN', []);
      const out = await fn(tx);
      await this.query(client, 'COMMIT', []);
      return out;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        broken = true;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async tables(): Promise<string[]> {
    return (await this.all('SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename')).map((r) => String(r['tablename']));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
