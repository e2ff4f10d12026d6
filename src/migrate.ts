/** `npm run migrate`: brings the configured database's schema up to date, then exits. */
import pg from "pg";
import { migratePostgres } from "./adapters/storage/postgres/migrations.js";
import { postgresClientConfig } from "./adapters/storage/postgres/postgres-store.js";
import { openSqliteStore } from "./adapters/storage/sqlite/sqlite-store.js";
import { ConfigError, loadConfig } from "./config.js";

async function main(): Promise<void> {
  const config = loadConfig();
  if (config.database.kind === "sqlite") {
    // Opening the store applies its migrations.
    await openSqliteStore(config.database.path).close();
    process.stdout.write(`The SQLite database ${config.database.path} is up to date.\n`);
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
