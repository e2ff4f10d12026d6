/** `npm run migrate`: brings the configured database's schema up to date, then exits. */
import { existsSync } from "node:fs";
import pg from "pg";
import { postgresStartupFailure } from "./adapters/storage/postgres/connection-errors.js";
import { migratePostgres } from "./adapters/storage/postgres/migrations.js";
import { postgresClientConfig } from "./adapters/storage/postgres/postgres-store.js";
import { type MigrationResult, schemaAheadNotice } from "./adapters/storage/schema-version.js";
import { openSqliteStore } from "./adapters/storage/sqlite/sqlite-store.js";
import { ConfigError, loadConfig } from "./config.js";
import { counted } from "./domain/text.js";

async function main(): Promise<void> {
  const config = loadConfig();
  if (config.database.kind === "sqlite") {
    const { path } = config.database;
    const created = !existsSync(path);
    let result: MigrationResult | undefined;
    // Opening the store applies its migrations.
    await openSqliteStore(path, { migrated: (r) => (result = r) }).close();
    // Without DATABASE_URL this is the default file: say so, in case another database was meant.
    process.stdout.write(
      `${
        created
          ? `There was no SQLite database at ${path}, so a new one was created, up to date.${process.env.DATABASE_URL ? "" : " DATABASE_URL is not set: set it to migrate another database, such as postgres://user:password@host:5432/db."}`
          : migrationLine(`the SQLite database ${path}`, result)
      }\n`,
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
    process.stdout.write(`${migrationLine("the PostgreSQL database", result)}\n`);
  } finally {
    await pool.end();
  }
}

/** What migrating `database` did, in a sentence. */
function migrationLine(database: string, result: MigrationResult | undefined): string {
  if (result === undefined) return `Migrated ${database}.`;
  const { applied, schemaVersion } = result;
  const named = database.charAt(0).toUpperCase() + database.slice(1);
  return (
    schemaAheadNotice(result) ??
    (applied === 0
      ? `${named} is already up to date (schema version ${schemaVersion}).`
      : `Applied ${counted(applied, "migration")} to ${database} (schema version ${schemaVersion} now).`)
  );
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
