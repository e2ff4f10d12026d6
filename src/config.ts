/**
 * The only reader of the environment. Every setting is typed, validated at start and documented in
 * the README's configuration table; a bad value stops the start with a message naming it.
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import {
  DEFAULT_RETRY_SCHEDULE,
  parseDuration,
  parseRetrySchedule,
  type RetrySchedule,
} from "./domain/retry-policy.js";
import { BUILT_IN_SOURCES, LARGEST_BODY_BYTES } from "./domain/sources.js";
import { closestName, isHeaderToken, listed } from "./domain/text.js";

/** Where Herald keeps its data. */
export type DatabaseConfig =
  | { kind: "sqlite"; path: string }
  | { kind: "postgres"; url: string; poolSize: number };

/** What this process does: serve the API, send deliveries, or both. */
export const ROLES = ["all", "api", "worker"] as const;
export type Role = (typeof ROLES)[number];

/** The built-in incoming sources and the setting that holds each one's secret. */
export const INCOMING_SERVICES = BUILT_IN_SOURCES;
export type IncomingServiceName = (typeof INCOMING_SERVICES)[number];

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Herald's validated settings. */
export interface Config {
  role: Role;
  port: number;
  host: string;
  dataDir: string;
  database: DatabaseConfig;
  /** Undefined: a key is generated on first start and kept in the data directory. */
  apiKey: string | undefined;
  incomingSecrets: Partial<Record<IncomingServiceName, string>>;
  /** Built-in sources whose secret setting is present but blank: they refuse everything too. */
  blankIncomingSecrets: IncomingServiceName[];
  allowPrivateTargets: boolean;
  retrySchedule: RetrySchedule;
  deliveryTimeoutMs: number;
  deliveryConcurrency: number;
  /** Most attempts in flight to one webhook; by default a quarter of `deliveryConcurrency`. */
  deliveryConcurrencyPerWebhook: number;
  /** Threads that send deliveries; 0 sends from the main thread. */
  deliveryThreads: number;
  bodyLimitBytes: number;
  /** Time a client has to send a whole request before it is answered 408. */
  requestTimeoutMs: number;
  shutdownGraceMs: number;
  /** Origins whose browser pages may call the API ("*": any); empty, none may. */
  corsOrigins: string[];
  logLevel: LogLevel;
  /** One warning per HERALD_ variable Herald does not read (a misspelt setting, most often). */
  unknownSettings: string[];
}

/** Thrown when settings are wrong; `problems` has one plain sentence per bad setting. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Herald cannot start because of its settings:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/** The longest wait between two attempts: a retry further off is not a retry anyone waits for. */
const MAX_RETRY_DELAY_MS = 30 * 24 * 3_600_000;

/** HERALD_ variables that Herald's own tests and bench read: they pass their environment on. */
const TOOLING_SETTINGS = ["HERALD_TEST_PG_URL"];

/** Reads and validates settings from `env` (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  // Every setting is read on every start, so the names read are the names Herald knows.
  const read = new Set<string>();
  const text = (name: string): string | undefined => {
    read.add(name);
    const value = env[name]?.trim();
    return value ? value : undefined;
  };

  const integer = (
    name: string,
    fallback: number,
    min: number,
    max: number,
    unit?: string,
  ): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    // Digits only: Number() would also read 0x10 as 16 and 1e3 as 1000.
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(
        `${name}=${raw} is not valid: use a whole number${unit ? ` of ${unit}` : ""} from ${min} to ${max}.`,
      );
      return fallback;
    }
    return value;
  };

  const duration = (name: string, fallback: number, minMs: number, maxMs: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    const value = parseDuration(raw);
    if (value === undefined || value < minMs || value > maxMs) {
      problems.push(
        `${name}=${raw} is not valid: use a duration such as 15s or 2m, from ${minMs < 1000 ? `${minMs} ms` : `${minMs / 1000} s`} to ${maxMs / 1000} s.`,
      );
      return fallback;
    }
    return value;
  };

  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (["true", "1", "yes", "on"].includes(raw.toLowerCase())) return true;
    if (["false", "0", "no", "off"].includes(raw.toLowerCase())) return false;
    problems.push(`${name}=${raw} is not valid: use true or false.`);
    return fallback;
  };

  const port = integer("PORT", 3000, 0, 65535);
  const host = text("HOST") ?? "0.0.0.0";
  const dataDir = resolve(text("HERALD_DATA_DIR") ?? "./data");

  // Compared in lower case, echoed as written.
  const rawRole = text("HERALD_ROLE");
  const role = (rawRole?.toLowerCase() ?? "all") as Role;
  if (!ROLES.includes(role)) {
    problems.push(`HERALD_ROLE=${rawRole} is not valid: use all, api or worker.`);
  }
  // A worker needs few connections (claims and batched writes); the API needs more for concurrent reads.
  const poolSize = integer("HERALD_DB_POOL_SIZE", role === "worker" ? 4 : 10, 2, 500);

  let database: DatabaseConfig = { kind: "sqlite", path: resolve(dataDir, "herald.db") };
  const databaseUrl = text("DATABASE_URL");
  if (databaseUrl !== undefined) {
    if (databaseUrl.startsWith("sqlite:")) {
      const path = databaseUrl.slice("sqlite:".length).replace(/^\/\//, "");
      if (path.length === 0)
        problems.push("DATABASE_URL=sqlite: needs a file path, e.g. sqlite:./data/herald.db.");
      else if (path === ":memory:") {
        problems.push(
          "DATABASE_URL=sqlite::memory: is not supported: Herald keeps its data in a file. Use sqlite:<path>.",
        );
      } else database = { kind: "sqlite", path: resolve(path) };
    } else if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
      const problem = postgresUrlProblem(databaseUrl);
      if (problem === undefined) database = { kind: "postgres", url: databaseUrl, poolSize };
      else problems.push(problem);
    } else if (/^postgres(ql)?:/.test(databaseUrl) || hasNoScheme(databaseUrl)) {
      problems.push(schemelessDatabaseUrlProblem(databaseUrl));
    } else {
      // Only the scheme is echoed: the rest of a URL may hold a password.
      const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(databaseUrl)?.[0];
      problems.push(
        `DATABASE_URL must start with sqlite: or postgres:// (for example sqlite:./data/herald.db)${scheme ? `; '${scheme}' is not supported` : ""}.`,
      );
    }
  }
  if (database.kind === "sqlite" && role !== "all" && ROLES.includes(role)) {
    problems.push(
      `HERALD_ROLE=${role} needs PostgreSQL: a SQLite file serves one process, which must do both jobs. Set DATABASE_URL=postgres://… or leave HERALD_ROLE unset.`,
    );
  }

  const apiKey = text("HERALD_API_KEY");
  // A key a header cannot carry as given could never be matched, and would lock every client out.
  if (apiKey !== undefined && !isHeaderToken(apiKey)) {
    problems.push(
      "HERALD_API_KEY may hold only printable ASCII characters without spaces (letters, digits and symbols such as - _ . ~), since clients send it in an HTTP header. Generate one with: openssl rand -hex 24",
    );
  }
  const incomingSecrets: Partial<Record<IncomingServiceName, string>> = {};
  const blankIncomingSecrets: IncomingServiceName[] = [];
  for (const service of INCOMING_SERVICES) {
    const name = `HERALD_INCOMING_SECRET_${service.toUpperCase()}`;
    const secret = text(name);
    if (secret !== undefined) incomingSecrets[service] = secret;
    else if (env[name] !== undefined) blankIncomingSecrets.push(service);
  }

  let retrySchedule = DEFAULT_RETRY_SCHEDULE;
  const rawSchedule = text("HERALD_RETRY_SCHEDULE");
  if (rawSchedule !== undefined) {
    const parsed = rawSchedule.toLowerCase() === "none" ? [] : parseRetrySchedule(rawSchedule);
    const why =
      "invalid" in parsed
        ? parsed.invalid === ""
          ? "it has an empty entry (two commas in a row, or one at an end)"
          : `'${parsed.invalid}' is not a delay`
        : "ambiguous" in parsed
          ? "its numbers without a unit mix seconds (below 1000) and milliseconds (from 1000 up), so which was meant cannot be told; write each with its unit"
          : parsed.length > 50
            ? `it lists ${parsed.length} delays`
            : parsed.some((delay) => delay > MAX_RETRY_DELAY_MS)
              ? "a delay is longer than 30 days"
              : undefined;
    // `why` says it all; the `in` tests tell TypeScript that what is left is a schedule.
    if (why !== undefined || "invalid" in parsed || "ambiguous" in parsed) {
      problems.push(
        `HERALD_RETRY_SCHEDULE=${rawSchedule} is not valid: ${why}. List up to 50 delays of at most 30 days, separated by commas, such as 5s,5m,30m, or none for no retries.`,
      );
    } else retrySchedule = parsed;
  }

  const rawLogLevel = text("LOG_LEVEL");
  const logLevel = (rawLogLevel?.toLowerCase() ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL=${rawLogLevel} is not valid: use one of ${LOG_LEVELS.join(", ")}.`);
  }

  const rawCorsOrigins = text("HERALD_CORS_ORIGINS");
  const cors = parseCorsOrigins(rawCorsOrigins ?? "");
  if (cors.invalid.length > 0) {
    problems.push(
      `HERALD_CORS_ORIGINS has ${cors.invalid.length === 1 ? "an entry that is not an origin" : "entries that are not origins"}: ${cors.invalid.map((entry) => `'${entry}'`).join(", ")}. Write each origin as the browser sends it, scheme://host[:port] with no path (such as https://app.example.com or http://localhost:5173), separated by commas; or * for any origin.`,
    );
  }

  // Read before the config is built: the per-webhook limit defaults to a share of it.
  const problemsBefore = problems.length;
  const deliveryConcurrency = integer("HERALD_DELIVERY_CONCURRENCY", 64, 1, 10_000);
  // A limit refused above bounds nothing: quoting the default in its place would mislead.
  const perWebhookMax = problems.length === problemsBefore ? deliveryConcurrency : 10_000;
  const config: Config = {
    role: ROLES.includes(role) ? role : "all",
    port,
    host,
    dataDir,
    database,
    apiKey,
    incomingSecrets,
    blankIncomingSecrets,
    allowPrivateTargets: boolean("HERALD_ALLOW_PRIVATE_TARGETS", false),
    retrySchedule,
    deliveryTimeoutMs: duration("HERALD_DELIVERY_TIMEOUT", 15_000, 100, 300_000),
    deliveryConcurrency,
    // More than the whole would never be used: said at start rather than ignored.
    deliveryConcurrencyPerWebhook: integer(
      "HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK",
      Math.ceil(deliveryConcurrency / 4),
      1,
      perWebhookMax,
      "attempts, at most HERALD_DELIVERY_CONCURRENCY,",
    ),
    // A delivery thread pays off when it has a core of its own; on two cores or fewer, the main
    // thread, the SQLite writer and the receivers' side of the network already share them.
    deliveryThreads: integer("HERALD_DELIVERY_THREADS", availableParallelism() > 2 ? 1 : 0, 0, 64),
    bodyLimitBytes: integer("HERALD_BODY_LIMIT", 1024 * 1024, 1024, LARGEST_BODY_BYTES, "bytes"),
    requestTimeoutMs: duration("HERALD_REQUEST_TIMEOUT", 60_000, 1000, 600_000),
    shutdownGraceMs: duration("HERALD_SHUTDOWN_GRACE", 10_000, 0, 300_000),
    corsOrigins: cors.origins,
    logLevel: LOG_LEVELS.includes(logLevel) ? logLevel : "info",
    unknownSettings: [],
  };
  if (problems.length > 0) throw new ConfigError(problems);
  config.unknownSettings = unknownSettingWarnings(env, [...read, ...TOOLING_SETTINGS]);
  return config;
}

/**
 * A warning for each variable named HERALD_… that is not in `known`: a misspelt setting is
 * otherwise ignored without a word, and its default taken. Only the built-in sources take their
 * secret from the environment; a secret for another source name is said to go through the API.
 */
function unknownSettingWarnings(env: NodeJS.ProcessEnv, known: string[]): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith("HERALD_") && !known.includes(name))
    .sort()
    .map((name) => {
      const meant = closestSetting(name, known);
      if (meant) return `${name} is not a Herald setting, so it is ignored. Did you mean ${meant}?`;
      const source = /^HERALD_INCOMING_SECRET_(\w+)$/.exec(name)?.[1]?.toLowerCase();
      if (source) {
        return `${name} is not a Herald setting, so it is ignored: only the built-in sources (${INCOMING_SERVICES.join(", ")}) take their secret from the environment. Create the source '${source}' with its secret through POST /api/sources.`;
      }
      return `${name} is not a Herald setting, so it is ignored. The settings are listed in the README's configuration table.`;
    });
}

/** The known setting `name` is most likely a misspelling of, if one is close enough to tell. */
function closestSetting(name: string, known: string[]): string | undefined {
  // HERALD_PORT for PORT: a setting of its own with the prefix added.
  const bare = name.slice("HERALD_".length);
  if (known.includes(bare)) return bare;
  return closestName(name, known);
}

/** Example of the URL form, with the operator's host and port when they can be told apart safely. */
function postgresUrlExample(hostAndPort = "localhost:5432"): string {
  return `postgres://user:password@${hostAndPort}/dbname`;
}

/** True when `value` has no scheme, though a URL parser would read one in "localhost:5432". */
function hasNoScheme(value: string): boolean {
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(value)?.[0];
  if (scheme === undefined) return true;
  // After a scheme comes // or a path, not a port ("localhost:5432") or a password ("user:pw@db").
  return !value.includes("://") && /^\d|@/.test(value.slice(scheme.length));
}

/**
 * Why a DATABASE_URL without a scheme (or with postgres: but no //) names no database. Echoes no
 * more than a host and port.
 */
function schemelessDatabaseUrlProblem(value: string): string {
  // What stands before an @ may be a password; what follows it, up to a /, is the host and port.
  // A word alone may be a password too: a host is taken only after an @ or before a port.
  const at = value.lastIndexOf("@");
  const host = /^([a-z0-9.-]+)(?::(\d{1,5}))?(?:[/?]|$)/i.exec(value.slice(at + 1));
  const hostKnown = host?.[1] !== undefined && (at !== -1 || host[2] !== undefined);
  const example = postgresUrlExample(hostKnown ? `${host?.[1]}:${host?.[2] ?? 5432}` : undefined);
  const echoed = at === -1 && host?.[2] !== undefined && value === host[0] ? `=${value}` : "";
  if (/^postgres(ql)?:/.test(value)) {
    return `DATABASE_URL must start with postgres:// (two slashes after the colon). Write it as ${example}.`;
  }
  return `DATABASE_URL${echoed} has no scheme, so Herald cannot tell which database it names. Write it as ${example} (with your user, password and database name), or sqlite:<path> for a SQLite file.`;
}

const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full", "no-verify"];

/**
 * What is wrong with a postgres:// URL, naming the part at fault, or undefined if it can be used.
 * Checked here rather than left to the driver, whose "Invalid URL" names no part of it.
 */
function postgresUrlProblem(value: string): string | undefined {
  const rest = value.slice(value.indexOf("://") + 3);
  const authority = rest.split(/[/?#]/, 1)[0] ?? "";
  const at = authority.lastIndexOf("@");
  const userInfo = at === -1 ? "" : authority.slice(0, at);
  const hostAndPort = authority.slice(at + 1);
  try {
    for (const part of userInfo.split(":")) decodeURIComponent(part);
  } catch {
    return "DATABASE_URL has a user name or password with a % not followed by two hexadecimal digits: write % itself as %25.";
  }
  let port: string | undefined;
  if (hostAndPort.startsWith("[")) {
    const close = hostAndPort.indexOf("]");
    if (close === -1) {
      return "DATABASE_URL has an IPv6 address without its closing ]: write it as [::1]:5432.";
    }
    const after = hostAndPort.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) {
      return `DATABASE_URL has '${after}' after the IPv6 address ${hostAndPort.slice(0, close + 1)}: only a port may follow it, as in [::1]:5432.`;
    }
    port = after === "" ? undefined : after.slice(1);
  } else {
    const colons = hostAndPort.split(":").length - 1;
    if (colons > 1) {
      return `DATABASE_URL has the host ${hostAndPort}, which has too many colons: write an IPv6 address in brackets, as [::1]:5432.`;
    }
    port = colons === 1 ? hostAndPort.slice(hostAndPort.indexOf(":") + 1) : undefined;
  }
  if (
    port !== undefined &&
    port !== "" &&
    !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)
  ) {
    return `DATABASE_URL has port ${port}, which is not a port: use a whole number from 1 to 65535, such as 5432.`;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `DATABASE_URL is not a URL Herald can read: check it against the form ${postgresUrlExample()}, and write characters such as @ : / ? # in the user name or password as %40 %3A %2F %3F %23.`;
  }
  const sslmode = url.searchParams.get("sslmode");
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) {
    return `DATABASE_URL has sslmode=${sslmode}, which is not an sslmode: use ${listed(SSL_MODES, "or")}.`;
  }
  return undefined;
}

/**
 * Reads HERALD_CORS_ORIGINS: origins separated by commas, each as a browser sends it
 * (scheme://host[:port], no path), or "*" for any; `invalid` holds the entries that are not.
 */
function parseCorsOrigins(raw: string): { origins: string[]; invalid: string[] } {
  const entries = raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  const origins: string[] = [];
  const invalid: string[] = [];
  for (const entry of entries) {
    if (entry === "*") {
      origins.push(entry);
      continue;
    }
    const origin = originOf(entry);
    if (origin === undefined) invalid.push(entry);
    else origins.push(origin);
  }
  return { origins, invalid };
}

/** The origin `entry` names, serialized as browsers send it; undefined if it is not just an origin. */
function originOf(entry: string): string | undefined {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    return undefined;
  }
  const bare =
    (url.protocol === "http:" || url.protocol === "https:") &&
    url.username === "" &&
    url.password === "" &&
    url.pathname === "/" &&
    url.search === "" &&
    url.hash === "" &&
    // A path that URL normalizes away (`/.`, `/a/..`) is still a path.
    !/^[a-z]+:\/\/[^/]*\/./i.test(entry);
  return bare ? url.origin : undefined;
}
