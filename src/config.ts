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
import { isHeaderToken } from "./domain/text.js";

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

/** Reads and validates settings from `env` (process.env by default). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
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
    const raw = text(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (["true", "1", "yes", "on"].includes(raw)) return true;
    if (["false", "0", "no", "off"].includes(raw)) return false;
    problems.push(`${name}=${raw} is not valid: use true or false.`);
    return fallback;
  };

  const port = integer("PORT", 3000, 0, 65535);
  const host = text("HOST") ?? "0.0.0.0";
  const dataDir = resolve(text("HERALD_DATA_DIR") ?? "./data");

  const role = (text("HERALD_ROLE")?.toLowerCase() ?? "all") as Role;
  if (!ROLES.includes(role)) {
    problems.push(`HERALD_ROLE=${role} is not valid: use all, api or worker.`);
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
      database = { kind: "postgres", url: databaseUrl, poolSize };
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

  const logLevel = (text("LOG_LEVEL")?.toLowerCase() ?? "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(`LOG_LEVEL=${logLevel} is not valid: use one of ${LOG_LEVELS.join(", ")}.`);
  }

  const rawCorsOrigins = text("HERALD_CORS_ORIGINS");
  const cors = parseCorsOrigins(rawCorsOrigins ?? "");
  if (cors.invalid.length > 0) {
    problems.push(
      `HERALD_CORS_ORIGINS has ${cors.invalid.length === 1 ? "an entry that is not an origin" : "entries that are not origins"}: ${cors.invalid.map((entry) => `'${entry}'`).join(", ")}. Write each origin as the browser sends it, scheme://host[:port] with no path (such as https://app.example.com or http://localhost:5173), separated by commas; or * for any origin.`,
    );
  }

  // Read before the config is built: the per-webhook limit defaults to a share of it.
  const deliveryConcurrency = integer("HERALD_DELIVERY_CONCURRENCY", 64, 1, 10_000);
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
      deliveryConcurrency,
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
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
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
