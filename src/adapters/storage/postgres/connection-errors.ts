/**
 * Why Herald could not open its PostgreSQL database at start, in words an operator can act on:
 * the host and port, database, user or schema at fault and what to do, never the password.
 */
import { CONNECT_TIMEOUT_MS } from "./postgres-store.js";

/** Where a postgres:// URL leads, read as node-postgres reads it; its password is left out. */
export interface PostgresTarget {
  /** host:port, [v6]:port, or a Unix socket's path. */
  where: string;
  database: string;
  user: string;
  /** The first schema of the search_path the URL sets, if it sets one. */
  schema: string | undefined;
  /** How the URL asks for encryption: "sslmode=require", "ssl=true", or undefined. */
  ssl: string | undefined;
  password: string;
}

/** The parts of `url` a message may name (node-postgres falls back to PGHOST and the like). */
export function postgresTarget(url: string): PostgresTarget {
  const parsed = new URL(url);
  const query = parsed.searchParams;
  const env = process.env;
  const user =
    decodeURIComponent(parsed.username) ||
    query.get("user") ||
    env.PGUSER ||
    env.USER ||
    "postgres";
  const host =
    query.get("host") || decodeURIComponent(parsed.hostname) || env.PGHOST || "localhost";
  const port = parsed.port || query.get("port") || env.PGPORT || "5432";
  const where = host.startsWith("/")
    ? `${host}/.s.PGSQL.${port}`
    : host.includes(":") && !host.startsWith("[")
      ? `[${host}]:${port}`
      : `${host}:${port}`;
  // `options` carries session settings such as "-c search_path=herald,public".
  const searchPath = /(?:-c\s*|--)search_path=(\S+)/.exec(query.get("options") ?? "")?.[1];
  const first = searchPath?.split(",")[0]?.replace(/^"|"$/g, "").trim();
  const sslmode = query.get("sslmode");
  const ssl = query.get("ssl");
  return {
    where,
    database: decodeURIComponent(parsed.pathname.slice(1)) || env.PGDATABASE || user,
    user,
    schema: first === "$user" ? user : first || undefined,
    ssl: sslmode !== null ? `sslmode=${sslmode}` : ssl !== null ? `ssl=${ssl}` : undefined,
    password: decodeURIComponent(parsed.password),
  };
}

/** Node's and PostgreSQL's error fields this file reads. */
interface ConnectionError {
  code?: string;
  message?: string;
  errors?: Array<{ code?: string }>;
}

/**
 * What went wrong opening the PostgreSQL database at `url`, as two lines: what happened (its code
 * in parentheses) and what to do next, ending with `then` ("start Herald again").
 */
export function postgresStartupFailure(
  url: string,
  error: unknown,
  then = "start Herald again",
): string {
  const target = postgresTarget(url);
  const { where, database, user, schema, ssl } = target;
  const failure = (error ?? {}) as ConnectionError;
  // Connecting to each address of a name can fail as a whole, with a code only on each part.
  const code = failure.code ?? failure.errors?.[0]?.code;
  const serverSaid = failure.message ?? "";
  const told = (what: string, next: string) => `${what}\n${next}, then ${then}.`;

  switch (code) {
    case "ECONNREFUSED":
      return told(
        `Nothing answers at ${where} (ECONNREFUSED): is PostgreSQL running there?`,
        "Start PostgreSQL, or correct the host and port in DATABASE_URL",
      );
    case "ENOTFOUND":
      return told(
        `The host ${hostOf(where)} is not known: no name server has an address for it (ENOTFOUND).`,
        "Correct the host in DATABASE_URL",
      );
    case "EAI_AGAIN":
      return told(
        `The host ${hostOf(where)} is not known: the name server did not answer for it just now (EAI_AGAIN).`,
        "Check the host in DATABASE_URL and this machine's name servers (DNS)",
      );
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "ETIMEDOUT":
      return told(
        `${where} cannot be reached from this machine (${code}).`,
        "Check the host in DATABASE_URL and the network between them",
      );
    case "ENOENT":
      return told(
        `No PostgreSQL socket is at ${where} (ENOENT): is PostgreSQL running on this machine?`,
        "Start PostgreSQL, or correct the host and port in DATABASE_URL",
      );
    case "ECONNRESET":
      return closedEarly(where, "ECONNRESET", told);
    case "3D000":
      return told(
        `PostgreSQL at ${where} has no database named ${database} (3D000).`,
        `Create it (CREATE DATABASE ${quoted(database)};) or correct the database name in DATABASE_URL`,
      );
    case "28P01":
      return told(
        `PostgreSQL at ${where} refused the password of user ${user} for database ${database} (28P01).`,
        "Correct the user and password in DATABASE_URL",
      );
    case "28000":
      return told(
        `PostgreSQL at ${where} refused user ${user} for database ${database} (28000): ${serverSaid}.`,
        "Correct the user in DATABASE_URL, or let that user in (CREATE ROLE, or a line in the server's pg_hba.conf)",
      );
    case "3F000":
      return schema !== undefined
        ? told(
            `The schema ${schema} named in search_path does not exist in database ${database} at ${where} (3F000).`,
            `Create it (CREATE SCHEMA ${quoted(schema)};) or correct search_path in DATABASE_URL`,
          )
        : told(
            `Database ${database} at ${where} has none of the schemas of its default search_path ("$user", public), so Herald has nowhere to create its tables (3F000).`,
            "Create one (CREATE SCHEMA public;), or name an existing one in DATABASE_URL with ?options=-c%20search_path%3Dname",
          );
    case "42501":
      return told(
        `User ${user} may not create Herald's tables in database ${database} at ${where} (42501): ${serverSaid}.`,
        `Give that user the right (for example GRANT CREATE ON SCHEMA ${quoted(schema ?? "public")} TO ${quoted(user)};), or use another user or schema in DATABASE_URL`,
      );
    case "53300":
      return told(
        `PostgreSQL at ${where} has no connection left for Herald (53300): ${serverSaid}.`,
        "Raise max_connections on the server (or the connection limit of Herald's role), or lower HERALD_DB_POOL_SIZE or the number of Herald processes",
      );
    case "57P03":
      return told(
        `PostgreSQL at ${where} is starting up or shutting down (57P03).`,
        "Wait until it accepts connections",
      );
  }
  if (serverSaid === "timeout expired" || /connection timeout/i.test(serverSaid)) {
    return told(
      `PostgreSQL at ${where} did not answer within ${CONNECT_TIMEOUT_MS / 1000} s (timeout).`,
      "Check that the host and port in DATABASE_URL are right and that no firewall drops the connection",
    );
  }
  if (serverSaid === "The server does not support SSL connections") {
    return told(
      `PostgreSQL at ${where} does not accept encrypted connections, which DATABASE_URL asks for with ${ssl ?? "its SSL settings"}.`,
      "Turn on SSL in the server, or set sslmode=disable in DATABASE_URL if the network to it is trusted",
    );
  }
  if (code !== undefined && /CERT|SELF_SIGNED|UNABLE_TO|^ERR_TLS|^ERR_SSL/.test(code)) {
    return told(
      `Herald could not trust the certificate of PostgreSQL at ${where}, as ${ssl ?? "its SSL settings"} asks: ${serverSaid} (${code}).`,
      "Name the certificate of the authority that signed it with sslrootcert=<file> in DATABASE_URL, or set sslmode=no-verify to encrypt without checking it (node-postgres checks the certificate for require as for verify-full)",
    );
  }
  if (/Connection terminated unexpectedly/.test(serverSaid)) {
    return closedEarly(where, undefined, told);
  }
  const said = masked(serverSaid, target.password) || "no reason was given";
  return told(
    `Herald could not open its database ${database} at ${where}: ${said}${code && !said.includes(code) ? ` (${code})` : ""}.`,
    "Check DATABASE_URL and that the database server is running",
  );
}

function closedEarly(
  where: string,
  code: string | undefined,
  told: (what: string, next: string) => string,
): string {
  return told(
    `PostgreSQL at ${where} closed the connection before Herald was let in${code ? ` (${code})` : ""}.`,
    "Check that PostgreSQL, and not another program, listens there, and read the server's log for why",
  );
}

/** The host of `where`, without its port. */
function hostOf(where: string): string {
  return where.replace(/:\d+$/, "");
}

/** `name` as SQL writes an identifier, quoted only when it must be. */
function quoted(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

/** `text` with the password, should a message ever carry it, masked. */
function masked(text: string, password: string): string {
  return password === "" ? text : text.split(password).join("***");
}
