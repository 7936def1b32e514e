/**
 * The seam between run storage's SQL and a database: SQLite (sqlite.ts) and
 * PostgreSQL (postgres.ts) each implement it; the schema, its migrations and
 * every query (storage.ts) are written once, with `?` placeholders.
 */

export type Row = Record<string, unknown>;

/** Statements inside one transaction. */
export interface SqlTx {
  all(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  run(sql: string, params?: readonly unknown[]): Promise<number>;
}

export interface SqlDriver extends SqlTx {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where the database is, for messages: a file, or a server and database. */
  readonly where: string;
  /** Runs `fn` in a transaction: all of it is written, or none. Transactions on one driver run one at a time. */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  /** The names of the tables in the database. */
  tables(): Promise<string[]>;
  close(): Promise<void>;
}

/** Column types that differ between the two. */
export function types(dialect: SqlDriver['dialect']): { id: string; bigint: string; blob: string } {
  return dialect === 'sqlite' ? { id: 'INTEGER PRIMARY KEY AUTOINCREMENT', bigint: 'INTEGER', blob: 'BLOB' } : { id: 'BIGSERIAL PRIMARY KEY', bigint: 'BIGINT', blob: 'BYTEA' };
}
