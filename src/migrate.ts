/** `npm run migrate`: brings the configured database's schema up to date, then exits. */
import { existsSync } from "node:fs";
import pg from "pg";
import { postgresStartupFailure } from "./adapters/storage/postgres/connection-errors.js";
import { migratePostgres, schemaAheadNotice } from "./adapters/storage/postgres/migrations.js";
import { postgresClientConfig } from "./adapters/storage/postgres/postgres-store.js";
import { openSqliteStore } from "./adapters/storage/sqlite/sqlite-store.js";
import { ConfigError, loadConfig } from "./config.js";
import { counted } from "./domain/text.js";

async function main(): Promise<void> {
  const config = loadConfig();
  if (config.database.kind === "sqlite") {
    const created = !existsSync(config.database.path);
    // Opening the store applies its migrations.
    await openSqliteStore(config.database.path).close();
    // Without DATABASE_URL this is the default file: say so, in case another database was meant.
    process.stdout.write(
      created
        ? `There was no SQLite database at ${config.database.path}, so a new one was created, up to date.${process.env.DATABASE_URL ? "" : " DATABASE_URL is not set: set it to migrate another database, such as postgres://user:password@host:5432/db."}\n`
        : `The SQLite database ${config.database.path} is up to date.\n`,
    );
    return;
  }
  const { url } = config.database;
  const pool = new pg.Pool({ ...postgresClientConfig({ url }), max: 1 });
  pool.on("error", () => undefined);
  try {
    const result = await migratePostgres(pool).catch((error: unknown) => {
      throw new MigrationFailure(postgresStartupFailure(url, error, "run the migration again"));
    });
    const { applied, schemaVersion } = result;
    process.stdout.write(
      `${
        schemaAheadNotice(result) ??
        (applied === 0
          ? `The PostgreSQL database is already up to date (schema version ${schemaVersion}).`
          : `Applied ${counted(applied, "migration")} to the PostgreSQL database (schema version ${schemaVersion} now).`)
      }\n`,
    );
  } finally {
    await pool.end();
  }
}

/** A failure already told in words. */
class MigrationFailure extends Error {}

main().catch((error: unknown) => {
  const message =
    error instanceof ConfigError || error instanceof MigrationFailure
      ? error.message
      : `Migration failed: ${(error as Error).message}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
