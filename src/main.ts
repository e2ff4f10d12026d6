/** Process entry: load the config, start Herald, stop it cleanly on SIGTERM or SIGINT. */
import { ConfigError, loadConfig } from "./config.js";
import { createHerald } from "./herald.js";

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\nFix the settings above and start Herald again.\n`);
      process.exit(1);
    }
    throw error;
  }
  let herald: Awaited<ReturnType<typeof createHerald>>;
  try {
    herald = await createHerald(config);
  } catch (error) {
    process.stderr.write(`${startupFailure(config, error)}\n`);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    herald.logger.info({ signal }, `Received ${signal}.`);
    herald.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        herald.logger.error({ err: error }, "Herald did not stop cleanly.");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  try {
    await herald.start();
  } catch (error) {
    const err = error as NodeJS.ErrnoException;
    const hint =
      err.code === "EADDRINUSE"
        ? `Port ${config.port} is already in use. Stop the other program or set PORT to a free port.`
        : err.code === "ENOTFOUND" || err.code === "EADDRNOTAVAIL" || err.code === "EAI_AGAIN"
          ? `HOST '${config.host}' is not an address of this machine (${err.code}). Set HOST to 0.0.0.0 (every interface), 127.0.0.1, or one of this machine's addresses.`
          : `Herald could not start: ${err.message}`;
    // Told as the other start failures are: plain text on standard error. Nothing was started, so
    // the shutdown's own lines ("stopped cleanly") would only blur it.
    process.stderr.write(`${hint}\n`);
    herald.logger.level = "silent";
    await herald.stop().catch(() => undefined);
    process.exit(1);
  }
}

/** What went wrong opening Herald's data, and which setting to look at. */
function startupFailure(config: ReturnType<typeof loadConfig>, error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  if (code === "HERALD_DATABASE_IN_USE" || code === "HERALD_API_KEY_FILE") return `${message}`;
  const files = [
    "EACCES",
    "EPERM",
    "EROFS",
    "ENOTDIR",
    "EEXIST",
    "ENOENT",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
  ];
  if (code !== undefined && files.includes(code)) {
    const where =
      config.database.kind === "sqlite"
        ? `${config.dataDir} (HERALD_DATA_DIR) and the database file ${config.database.path}`
        : `${config.dataDir} (HERALD_DATA_DIR)`;
    return `Herald could not write its data: ${message} (${code}).\nCheck that ${where} can be created and written by the user Herald runs as, then start Herald again.`;
  }
  if (config.database.kind === "sqlite") {
    return `Herald could not open its database file ${config.database.path}: ${message}\nCheck the file and DATABASE_URL, then start Herald again.`;
  }
  return `Herald could not open its database: ${message}\nCheck DATABASE_URL and that the database server is running, then start Herald again.`;
}

void main();
