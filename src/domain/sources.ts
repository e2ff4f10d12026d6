/**
 * Sources: the places that send Herald webhooks. Each has a receiving URL
 * (`POST /api/incoming-webhooks/<name>`), a verifier, a write-only secret, limits and routing rules.
 * `xano`, `stripe` and `custom` are built in: their secrets come from the environment.
 */
import { type ErrorCode, HeraldError } from "./errors.js";
import { isKnownEventType } from "./event-types.js";
import type { RoutingRule } from "./routing.js";
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
  if (!Number.isFinite(value)) return "is a number too large for JSON (it was read as null)";
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
    return `is a whole number beyond ${Number.MAX_SAFE_INTEGER}, whose last digits were rounded away (it was read as ${value}); compare it as a string`;
  }
  return undefined;
}

/**
 * Throws a 400 naming the first field of `rules` that cannot work: an unknown event type to emit,
 * a path that addresses nothing, a value that was changed in reading, an empty list of events.
 */
export function checkRules(rules: readonly RoutingRule[]): void {
  const refuse = (field: string, message: string, code: ErrorCode = "validation_failed") => {
    throw new HeraldError(code, message, field.replaceAll("[", ".").replaceAll("]", ""));
  };
  rules.forEach((rule, i) => {
    if (!isKnownEventType(rule.emit)) {
      refuse(
        `rules[${i}].emit`,
        `rules[${i}].emit '${rule.emit}' is not a known event type. GET /api/webhooks/events/types lists the valid ones.`,
        "unknown_event_type",
      );
    }
    if (Array.isArray(rule.event) && rule.event.length === 0) {
      refuse(
        `rules[${i}].event`,
        `rules[${i}].event is an empty list, which no webhook matches. Name at least one event, or leave event out to take any.`,
      );
    }
    const names = rule.event === undefined ? [] : [rule.event].flat();
    if (names.some((name) => name.includes("\u0000"))) {
      refuse(`rules[${i}].event`, `rules[${i}].event holds the NUL character. Remove it.`);
    }
    if (rule.data !== undefined) {
      const why = badPath(rule.data);
      if (why) refuse(`rules[${i}].data`, `rules[${i}].data ${why}.`);
    }
    for (const [path, condition] of Object.entries(rule.where ?? {})) {
      const why = badPath(path);
      if (why) refuse(`rules[${i}].where`, `rules[${i}].where ${why}.`);
      const values =
        condition !== null && typeof condition === "object"
          ? "in" in condition
            ? condition.in
            : []
          : [condition];
      for (const value of values) {
        const problem = badValue(value);
        if (problem) refuse(`rules[${i}].where`, `rules[${i}].where '${path}' ${problem}.`);
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
