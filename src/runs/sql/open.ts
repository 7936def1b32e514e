/** Opening run storage from where it is: a SQLite file, or a PostgreSQL URL. */
import type { Checkpoints } from './sqlite.ts';
import { openSqlStorage, type SqlRunStorage } from './storage.ts';

export type StorageLocation = { sqlite: string } | { postgres: string };

/** Opens (creating or migrating if need be) the run storage at `where`. Each driver loads only when chosen. `checkpoints`: SQLite's (sqlite.ts). */
export async function openStorageAt(where: StorageLocation, checkpoints?: Checkpoints): Promise<SqlRunStorage> {
  if ('postgres' in where) {
    const { openPostgres } = await import('./postgres.ts');
    return openSqlStorage(await openPostgres(where.postgres));
  }
  const { openSqlite } = await import('./sqlite.ts');
  return openSqlStorage(await openSqlite(where.sqlite, checkpoints));
}
