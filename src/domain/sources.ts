/**
 * Sources: the places that send Herald webhooks. Each has a receiving URL
 * (`POST /api/incoming-webhooks/<name>`), a verifier, a write-only secret, limits and routing rules.
 * `xano`, `stripe` and `custom` are built in: their secrets come from the environment.
 */
import { type ErrorCode, HeraldError } from "./errors.js";
import { isKnownEventType } from "./event-types.js";
import { changedInReading } from "./json-numbers.js";
import type { FieldCondition, RoutingRule } from "./routing.js";
import { DEFAULT_TOLERANCE_SECONDS, type VerifierSpec } from "./verifier-specs.js";
import { MASKED_SECRET } from "./webhooks.js";

/** A source's limits. */
export interface SourceSettings {
  /** Replay window of timestamped schemes, in seconds. */
  toleranceSeconds: number;
  /** Largest body accepted, in bytes. */
  maxBodyBytes: number;
  /** Requests per second allowed (with a burst of twice that); null for no limit. */
  rateLimitPerSecond: number | null;
}

/** A source as stored. Built-in sources are stored only once someone changes their rules or limits. */
export interface Source {
  name: string;
  verifier: VerifierSpec;
  /** Null for built-in sources (their secret is in the environment) and for `none`. */
  secret: string | null;
  rules: RoutingRule[];
  settings: SourceSettings;
  createdAt: number;
  updatedAt: number;
}

/** What a client sends to create a source (the verifier already normalized). */
export interface SourceInput {
  name: string;
  verifier: VerifierSpec;
  secret?: string;
  rules?: RoutingRule[];
  toleranceSeconds?: number;
  maxBodyBytes?: number;
  rateLimitPerSecond?: number | null;
  /** Must be true for a `none` verifier: accepting unverified webhooks is never a default. */
  allowUnverified?: boolean;
}

/** What a client sends to change a source; absent fields keep their value. */
export type SourcePatch = Partial<Omit<SourceInput, "name">>;

/** A source as the API shows it. */
export interface SourceView {
  name: string;
  url: string;
  builtIn: boolean;
  verifier: VerifierSpec;
  /** `***` when a secret is set, null when none is, in full only when the source is created. */
  secret: string | null;
  verified: boolean;
  rules: RoutingRule[];
  toleranceSeconds: number;
  maxBodyBytes: number;
  rateLimitPerSecond: number | null;
  createdAt: string | null;
  updatedAt: string | null;
}

export const BUILT_IN_SOURCES = ["xano", "stripe", "custom"] as const;

/** The largest body Herald takes: the most HERALD_BODY_LIMIT and a source's maxBodyBytes may be. */
export const LARGEST_BODY_BYTES = 50 * 1024 * 1024;

/** True for the sources the API contract names. */
export function isBuiltInSource(name: string): boolean {
  return (BUILT_IN_SOURCES as readonly string[]).includes(name);
}

/** Default limits, with the configured body limit. */
export function defaultSettings(maxBodyBytes: number): SourceSettings {
  return { toleranceSeconds: DEFAULT_TOLERANCE_SECONDS, maxBodyBytes, rateLimitPerSecond: null };
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Throws a 400 unless `name` can be part of a URL path as it is. */
export function checkSourceName(name: string): void {
  if (name === "health") {
    throw new HeraldError(
      "validation_failed",
      "name 'health' is taken: /api/incoming-webhooks/health is Herald's health check. Choose another name.",
      "name",
    );
  }
  if (!NAME.test(name)) {
    throw new HeraldError(
      "validation_failed",
      `name '${name}' cannot name a source: use 1 to 63 lower-case letters, digits, '-' or '_', starting with a letter or digit.`,
      "name",
    );
  }
}

/**
 * Why `path` cannot address a field of a body, or undefined when it can: each of its dot-separated
 * names must be non-empty, and none may name an object's prototype.
 */
function badPath(path: string): string | undefined {
  const names = path.split(".");
  if (names.some((name) => name === "")) {
    return `'${path}' has an empty name in it: write names separated by single dots, such as data.table`;
  }
  if (names.some((name) => name === "__proto__")) {
    return `'${path}' names __proto__, which is no field of a JSON body`;
  }
  return undefined;
}

/** Why a `where` value cannot be compared as written, or undefined when it can. */
function badValue(value: unknown): string | undefined {
  if (typeof value !== "number") return undefined;
  // JSON.parse has already changed these: a rule would compare against another number.
  switch (changedInReading(value)) {
    case "overflow":
      return "is a number too large for JSON (it was read as null)";
    case "rounded":
      return `is a whole number beyond ${Number.MAX_SAFE_INTEGER}, whose last digits were rounded away (it was read as ${value}); compare it as a string`;
    default:
      return undefined;
  }
}

/** The values a condition compares with: the value itself, those of an `in` list, or none. */
function comparedValues(condition: FieldCondition): unknown[] {
  if (condition === null || typeof condition !== "object") return [condition];
  return "in" in condition ? condition.in : [];
}

/**
 * Throws a 400 naming the first field of `rules` that cannot work: an unknown event type to emit,
 * a path that addresses nothing, a value that was changed in reading, an empty list of events.
 */
export function checkRules(rules: readonly RoutingRule[]): void {
  rules.forEach((rule, i) => {
    // The message says rules[0].where, as a client writes it; the field is rules.0.where.
    const refuse = (part: string, problem: string, code: ErrorCode = "validation_failed") => {
      throw new HeraldError(code, `rules[${i}].${part} ${problem}`, `rules.${i}.${part}`);
    };
    if (!isKnownEventType(rule.emit)) {
      refuse(
        "emit",
        `'${rule.emit}' is not a known event type. GET /api/webhooks/events/types lists the valid ones.`,
        "unknown_event_type",
      );
    }
    if (Array.isArray(rule.event) && rule.event.length === 0) {
      refuse(
        "event",
        "is an empty list, which no webhook matches. Name at least one event, or leave event out to take any.",
      );
    }
    const names = rule.event === undefined ? [] : [rule.event].flat();
    if (names.some((name) => name.includes("\u0000"))) {
      refuse("event", "holds the NUL character. Remove it.");
    }
    if (rule.data !== undefined) {
      const why = badPath(rule.data);
      if (why) refuse("data", `${why}.`);
    }
    for (const [path, condition] of Object.entries(rule.where ?? {})) {
      const why = badPath(path);
      if (why) refuse("where", `${why}.`);
      for (const value of comparedValues(condition)) {
        const problem = badValue(value);
        if (problem) refuse("where", `'${path}' ${problem}.`);
      }
    }
  });
}

/** Shows a source to an API client. */
export function viewSource(
  source: Source,
  options: { builtIn: boolean; hasSecret: boolean; revealSecret?: boolean },
): SourceView {
  const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);
  return {
    name: source.name,
    url: `/api/incoming-webhooks/${source.name}`,
    builtIn: options.builtIn,
    verifier: source.verifier,
    secret:
      options.revealSecret && source.secret !== null
        ? source.secret
        : options.hasSecret
          ? MASKED_SECRET
          : null,
    verified: source.verifier.type !== "none",
    rules: source.rules,
    toleranceSeconds: source.settings.toleranceSeconds,
    maxBodyBytes: source.settings.maxBodyBytes,
    rateLimitPerSecond: source.settings.rateLimitPerSecond,
    createdAt: iso(source.createdAt),
    updatedAt: iso(source.updatedAt),
  };
}
