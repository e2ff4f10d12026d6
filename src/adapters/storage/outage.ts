/**
 * Tells a database that cannot serve right now (down, restarting, out of connections, disk full)
 * from a bug, by the error codes the drivers use, so the API can answer 503 and ask the client to
 * send again instead of reporting an internal error.
 */

/** Network errors of a driver that cannot reach its server. */
const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
]);

/**
 * PostgreSQL SQLSTATEs: the server is shutting down or starting, or out of connections or memory;
 * the login is refused (role, password, database dropped or renamed) or the database is a standby
 * that takes no writes (a failover in progress); a lock, deadlock or serialization conflict that a
 * second try clears.
 */
const POSTGRES_CODES = new Set([
  "57P01",
  "57P02",
  "57P03",
  "57P04",
  "53000",
  "53200",
  "53300",
  "28000",
  "28P01",
  "3D000",
  "25006",
  "40001",
  "40P01",
  "55P03",
]);

/** object_not_in_prerequisite_state, an outage only when it refuses the connection itself. */
const POSTGRES_NOT_ACCEPTING = { code: "55000", message: "not currently accepting connections" };

/** SQLite result codes of a file that is locked or cannot be read or written as a whole. */
const SQLITE_CODE = /^SQLITE_(BUSY|LOCKED|IOERR|READONLY|CANTOPEN|PROTOCOL)/;

/** Messages node-postgres gives when a connection drops or none can be had in time. */
const POSTGRES_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
];

/** What node-postgres says when a statement was sent and no answer came within its timeout. */
const POSTGRES_NO_ANSWER = "Query read timeout";

/**
 * Why a database cannot serve right now: `full` when its disk has no room (SQLite's
 * SQLITE_FULL, PostgreSQL's disk_full); `no_answer` when a statement that commits was sent and no
 * answer came (in time, or before the connection broke), so whether it took effect is unknown;
 * `unavailable` for every other outage, where nothing was stored.
 */
export type OutageKind = "full" | "no_answer" | "unavailable";

/**
 * The connection failed while a statement that commits was on its way or awaited its answer: the
 * server may have received and committed it. `cause` is the driver's error.
 */
export class UncertainWrite extends Error {
  constructor(cause: unknown) {
    super(`the connection to the database failed before it answered a write: ${String(cause)}`, {
      cause,
    });
  }
}

/**
 * Runs `write`, a statement that commits; an outage while it is out becomes an UncertainWrite,
 * since the server commits what it received even once its client is gone.
 */
export async function committing<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw storageOutage(error) === "unavailable" ? new UncertainWrite(error) : error;
  }
}

/** What kind of outage `error` reports, or undefined when it is not one (a bug, a constraint). */
export function storageOutage(error: unknown): OutageKind | undefined {
  if (error instanceof UncertainWrite) return "no_answer";
  if (typeof error !== "object" || error === null) return undefined;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    if (code.startsWith("SQLITE_FULL") || code === "53100") return "full";
    if (NETWORK_CODES.has(code) || POSTGRES_CODES.has(code) || SQLITE_CODE.test(code)) {
      return "unavailable";
    }
    if (
      code === POSTGRES_NOT_ACCEPTING.code &&
      typeof message === "string" &&
      message.includes(POSTGRES_NOT_ACCEPTING.message)
    ) {
      return "unavailable";
    }
    // Connection exceptions (class 08).
    if (/^08[0-9A-Z]{3}$/.test(code)) return "unavailable";
  }
  if (message === POSTGRES_NO_ANSWER) return "no_answer";
  if (typeof message === "string" && POSTGRES_MESSAGES.some((m) => message.includes(m))) {
    return "unavailable";
  }
  return undefined;
}

/** What an operator can do about an outage, by the error's code, where the code tells more. */
const OUTAGE_ADVICE: Record<string, string> = {
  "53300":
    "PostgreSQL has no connection left for Herald (53300): raise max_connections on the server (or the connection limit of Herald's role), or lower HERALD_DB_POOL_SIZE or the number of Herald processes.",
  "53000":
    "PostgreSQL is out of a resource it needs (53000): check the server's log and its limits.",
  "53200": "PostgreSQL ran out of memory (53200): check the server's memory and its log.",
  "57P01":
    "PostgreSQL ended Herald's connection (57P01: an administrator ended it, or the server is shutting down or restarting): Herald connects again by itself; if this keeps happening, read the server's log.",
  "57P02":
    "PostgreSQL is shutting down or was restarted (57P02): wait until it accepts connections again.",
  "57P03": "PostgreSQL is starting up or shutting down (57P03): wait until it accepts connections.",
  "28P01":
    "PostgreSQL refused Herald's login (28P01, wrong password): check the user and password in DATABASE_URL.",
  "28000":
    "PostgreSQL refused Herald's login (28000): check the user in DATABASE_URL and the server's pg_hba.conf.",
  "3D000":
    "The database named in DATABASE_URL does not exist on the server any more (3D000): check that it was not dropped or renamed.",
  "25006":
    "PostgreSQL takes no writes (25006, a read-only standby): a failover may be under way, or DATABASE_URL points at a standby instead of the primary.",
  "40001":
    "A write met a conflict with another session (40001); it clears on its own. If it keeps happening, look for long transactions on the server.",
  "40P01":
    "A write met a deadlock with another session (40P01); it clears on its own. If it keeps happening, look for long transactions on the server.",
  "55P03":
    "A write waited too long for a lock another session holds (55P03). If it keeps happening, look for long transactions on the server.",
  ECONNREFUSED:
    "Nothing listens at the database's address (ECONNREFUSED): check that the database server is running and DATABASE_URL's host and port.",
  ENOTFOUND: "The database's host name does not resolve (ENOTFOUND): check DATABASE_URL's host.",
  EHOSTUNREACH:
    "The database's host cannot be reached (EHOSTUNREACH): check the network between Herald and the database.",
  SQLITE_BUSY:
    "The SQLite file is locked by another program (SQLITE_BUSY): check that no other process writes to it.",
  SQLITE_READONLY:
    "The SQLite file cannot be written (SQLITE_READONLY): check the file's and HERALD_DATA_DIR's permissions.",
};

/**
 * What the operator is told about an outage of kind `unavailable`: what the code says is wrong and
 * what to do, or, for codes that say no more, to check that the database runs and can be reached.
 */
export function outageAdvice(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  // Extended SQLite codes (SQLITE_BUSY_SNAPSHOT) are told as their primary code.
  const primary = typeof code === "string" ? code.replace(/^(SQLITE_\w+?)_.*$/, "$1") : undefined;
  const known = primary === undefined ? undefined : OUTAGE_ADVICE[primary];
  if (known === undefined) {
    return "The database could not serve: check that it is running and reachable.";
  }
  const said = typeof message === "string" ? message.split("\n", 1)[0]?.trim() : undefined;
  return said ? `${known} The database said: ${said}.` : known;
}

/**
 * What the operator is told of an outage of kind `outage` caused by `error`: what is wrong and
 * what to do.
 */
export function outageKindAdvice(outage: OutageKind, error: unknown): string {
  if (outage === "full") {
    return "The database's disk is full: free space where the database lives (HERALD_DATA_DIR for SQLite).";
  }
  if (outage === "no_answer") {
    return "The database did not answer a write (in time, or before the connection to it broke): check that it is running and that the network to it works.";
  }
  return outageAdvice(error);
}

/**
 * What the operator is told of a database failure outside a request (a delivery worker's claim,
 * attempt record or lease sweep): the outage's advice, or, for an error that is no outage, to
 * read the error the line carries.
 */
export function storeFailureAdvice(error: unknown): string {
  const outage = storageOutage(error);
  if (outage !== undefined) return outageKindAdvice(outage, error);
  return "Check that the database is running and reachable; the error in this line says what it refused.";
}
