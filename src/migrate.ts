/** `npm run migrate`: brings the configured database's schema up to date, then exits. */
import { existsSync } from "node:fs";
import pg from "pg";
import { migratePostgres } from "./adapters/storage/postgres/migrations.js";
import { postgresClientConfig } from "./adapters/storage/postgres/postgres-store.js";
import { openSqliteStore } from "./adapters/storage/sqlite/sqlite-store.js";
import { ConfigError, loadConfig } from "./config.js";

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
  const pool = new pg.Pool({ ...postgresClientConfig({ url: config.database.url }), max: 1 });
  try {
    const applied = await migratePostgres(pool);
    process.stdout.write(
      applied === 0
        ? "The PostgreSQL database is already up to date.\n"
        : `Applied ${applied} migration${applied === 1 ? "" : "s"} to the PostgreSQL database.\n`,
    );
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  const message =
    error instanceof ConfigError ? error.message : `Migration failed: ${(error as Error).message}`;
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
