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
    process.stderr.write(
      `Herald could not open its database: ${(error as Error).message}\nCheck DATABASE_URL and that the database server is running, then start Herald again.\n`,
    );
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
    herald.logger.fatal({ err: error }, hint);
    await herald.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();
