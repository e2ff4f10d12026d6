/** Process entry: load the config, start Herald, stop it cleanly on SIGTERM or SIGINT. */
import { type Stats, statSync } from "node:fs";
import { constants, userInfo } from "node:os";
import { dirname, sep } from "node:path";
import { createLogger } from "./adapters/logging.js";
import { storageOutage } from "./adapters/storage/outage.js";
import { postgresStartupFailure } from "./adapters/storage/postgres/connection-errors.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
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
  const logger = createLogger(config.logLevel);
  // Told before anything is opened: a misspelt HERALD_DATA_DIR, say, explains what follows.
  for (const warning of config.unknownSettings) logger.warn({}, warning);
  let herald: Awaited<ReturnType<typeof createHerald>>;
  try {
    herald = await createHerald(config, { logger });
  } catch (error) {
    process.stderr.write(`${startupFailure(config, error)}\n`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      herald.logger.warn(
        { signal },
        `A second stop signal (${signal}) came: Herald stops now without waiting; attempts still in flight stay pending and are sent again after the next start (a receiver may get them twice).`,
      );
      // 128 and the signal's number, as shells report a process the signal ended.
      process.exit(128 + constants.signals[signal]);
    }
    stopping = true;
    herald.logger.info({ signal }, `Received ${signal}.`);
    herald.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        herald.logger.error(
          { err: error, stack: (error as Error).stack },
          "Herald did not stop cleanly.",
        );
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  try {
    await herald.start();
  } catch (error) {
    const err = error as NodeJS.ErrnoException;
    const hint =
      err.code === "EADDRINUSE"
        ? `Port ${config.port} is already in use. Stop the other program or set PORT to a free port.`
        : (err.code === "ENOTFOUND" || err.code === "EADDRNOTAVAIL" || err.code === "EAI_AGAIN") &&
            [undefined, config.host].includes((err as { hostname?: string }).hostname)
          ? `HOST '${config.host}' is not an address of this machine (${err.code}). Set HOST to 0.0.0.0 (every interface), 127.0.0.1, or one of this machine's addresses.`
          : config.database.kind === "postgres" && storageOutage(error) !== undefined
            ? // The sessions a worker holds (its wake-ups, its liveness lock) open at start.
              postgresStartupFailure(config.database.url, error)
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
function startupFailure(config: Config, error: unknown): string {
  const { code, message, path } = error as { code?: string; message?: string; path?: string };
  if (code === "HERALD_DATABASE_IN_USE" || code === "HERALD_API_KEY_FILE") return `${message}`;
  // A file system error names the path at fault; a failed database connection names none.
  if (code !== undefined && typeof path === "string") return fileFailure(config, code, path);
  if (config.database.kind === "postgres") {
    return postgresStartupFailure(config.database.url, error);
  }
  if (code === "SQLITE_READONLY" || code === "SQLITE_CANTOPEN") {
    return `Herald could not write its database file ${config.database.path}: ${message} (${code}).\nCheck that ${config.dataDir} (HERALD_DATA_DIR) and the database file ${config.database.path} can be created and written by ${runsAs().described}, then start Herald again.`;
  }
  return `Herald could not open its database file ${config.database.path}: ${message}\nCheck the file and DATABASE_URL, then start Herald again.`;
}

/** A file or folder Herald could not create or write, named with the setting that chose it. */
function fileFailure(config: Config, code: string, path: string): string {
  const inDataDir = isWithin(path, config.dataDir) || isWithin(config.dataDir, path);
  // A SQLite file outside the data directory is where DATABASE_URL puts it.
  const databaseFile =
    config.database.kind === "sqlite" && !inDataDir ? config.database.path : undefined;
  const setting = databaseFile === undefined ? "HERALD_DATA_DIR" : "DATABASE_URL";
  const folder = databaseFile === undefined ? config.dataDir : dirname(databaseFile);
  const named =
    databaseFile === undefined
      ? `HERALD_DATA_DIR (${folder})`
      : `The folder of the database file ${databaseFile} (DATABASE_URL)`;
  const pointIt =
    databaseFile === undefined
      ? "point it at a folder"
      : "point DATABASE_URL at a file in a folder";
  if (code === "EEXIST" || code === "ENOTDIR") {
    const file = fileInTheWay(path);
    if (file === folder) {
      return `${named} is a file, not a folder (${code}): ${pointIt}, or remove the file, then start Herald again.`;
    }
    if (file !== undefined) {
      return `${named} lies under ${file}, which is a file, not a folder (${code}): ${pointIt}, or remove that file, then start Herald again.`;
    }
  }
  if (code === "EACCES" || code === "EPERM") {
    const user = runsAs();
    // The example changes Herald's own folder only, never one above it that others use too.
    const example =
      statOf(folder) === undefined
        ? `mkdir -p ${folder} && chown ${user.name} ${folder}`
        : `chown -R ${user.name} ${folder}`;
    return `Herald runs as ${user.described}, who may not create or write ${path} (${code}): give that user write access to ${folder} (for example: ${example}), or point ${setting} at a folder it may write to, then start Herald again.`;
  }
  if (code === "EROFS") {
    return `${path} is on a read-only file system (EROFS): point ${setting} at a folder on a writable one, then start Herald again.`;
  }
  if (code === "ENOSPC") {
    return `The disk that holds ${path} is full (ENOSPC): free some space, or point ${setting} at a folder on another disk, then start Herald again.`;
  }
  return `Herald could not write its data at ${path} (${code}).\nCheck that ${named} can be created and written by ${runsAs().described}, then start Herald again.`;
}

/** The user this process runs as: by name, or by uid when the system has no name for it. */
function runsAs(): { name: string; described: string } {
  try {
    const { username } = userInfo();
    return { name: username, described: `the user ${username}` };
  } catch {
    const uid = String(process.getuid?.() ?? "unknown");
    return { name: uid, described: `the user with uid ${uid}` };
  }
}

/** True when `path` is `folder` or lies inside it. */
function isWithin(path: string, folder: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : `${folder}${sep}`);
}

/** The file at `path` or above it that stands where a folder must be, if there is one. */
function fileInTheWay(path: string): string | undefined {
  for (let at = path; ; at = dirname(at)) {
    const found = statOf(at);
    if (found !== undefined && !found.isDirectory()) return at;
    if (dirname(at) === at) return undefined;
  }
}

/** What is at `path`; undefined when nothing is, or it cannot be told (a file in the way, no access). */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

void main();
