/**
 * A generic HMAC signature in a header, configured by an `HmacSpec`: SHA-256, 384 or 512, hex or
 * base64, an optional prefix such as `sha256=`, over the raw body or over `<timestamp>.<raw body>`.
 * The key is the secret's UTF-8 bytes. Several signatures may be sent in the one header, separated
 * by commas or spaces, so a sender can sign with an old and a new secret while rotating; a prefix
 * is matched without regard to case. Limits: without a timestamp there is no replay window
 * (replays are caught by dedupe instead); hex is compared without regard to case, base64 exactly
 * (no base64url, padding as the sender's encoder produced it). The other HMAC schemes of this
 * folder are built on the helpers exported here.
 */
import { createHmac } from "node:crypto";
import {
  filledHeader,
  type Headers,
  headerValue,
  type Verification,
  type Verifier,
} from "../../domain/incoming.js";
import { digestEqual, hmacKey } from "../../domain/signing.js";
import { counted } from "../../domain/text.js";
import {
  DEFAULT_TOLERANCE_SECONDS,
  type DigestEncoding,
  type HmacAlgorithm,
  type HmacSpec,
} from "../../domain/verifier-specs.js";

type Refusal = Extract<Verification, { ok: false }>;

const SEPARATOR = /[\s,]/;

/** `x-hub-signature-256` as `X-Hub-Signature-256`, for messages. */
export function displayHeader(name: string): string {
  return name
    .split("-")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join("-");
}

/** `sha512` as `HMAC-SHA512`, for messages. */
export function hmacLabel(algorithm: HmacAlgorithm): string {
  return `HMAC-${algorithm.toUpperCase()}`;
}

/** The HMAC of the concatenated parts, keyed with `key` (a string is used as its UTF-8 bytes). */
export function hmacDigest(
  algorithm: HmacAlgorithm,
  key: string | Buffer,
  parts: ReadonlyArray<string | Buffer>,
  encoding: DigestEncoding,
): string {
  const hmac = createHmac(algorithm, typeof key === "string" ? hmacKey(key) : key);
  for (const part of parts) hmac.update(part);
  return hmac.digest(encoding);
}

/**
 * True when any candidate equals `expected`. Every candidate is compared in constant time and none
 * is skipped, so the time taken does not reveal which one matched. Digests compare with
 * `digestEqual` (their length is public); secrets such as tokens pass `constantTimeEqual`.
 */
export function matchesAny(
  candidates: readonly string[],
  expected: string,
  equal: (given: string, expected: string) => boolean = digestEqual,
): boolean {
  let matched = false;
  for (const candidate of candidates) matched = equal(candidate, expected) || matched;
  return matched;
}

/** The sender's delivery id: `X-Webhook-Delivery`, else `webhook-id`; undefined when neither is sent. */
export function deliveryDedupeKey(headers: Headers): string | undefined {
  return filledHeader(headers, "x-webhook-delivery") ?? filledHeader(headers, "webhook-id");
}

/** An accepted verification, with the dedupe key only when there is one. */
export function accepted(scheme: string, dedupeKey: string | undefined): Verification {
  return dedupeKey ? { ok: true, scheme, dedupeKey } : { ok: true, scheme };
}

/** The replay window to apply: the source's when it is a usable number, else `fallback`. */
export function resolveTolerance(
  toleranceSeconds: number | undefined,
  fallback = DEFAULT_TOLERANCE_SECONDS,
): number {
  return typeof toleranceSeconds === "number" &&
    Number.isFinite(toleranceSeconds) &&
    toleranceSeconds >= 0
    ? toleranceSeconds
    : fallback;
}

/**
 * Reads a Unix timestamp in seconds from a header. Returns the header's exact text (which is what
 * the sender signed) and its value, or the refusal to give, ending with `instructions`.
 */
export function readTimestamp(
  headers: Headers,
  header: string,
  instructions: string,
): { text: string; seconds: number } | Refusal {
  const shown = displayHeader(header);
  const text = headerValue(headers, header)?.trim();
  if (!text) {
    return {
      ok: false,
      code: "signature_missing",
      reason: `The ${shown} header is missing. ${instructions}`,
    };
  }
  if (!/^\d{1,15}$/.test(text)) {
    return {
      ok: false,
      code: "signature_invalid",
      reason: `The ${shown} header is not a Unix time in whole seconds. Send digits only, for example 1700000000. ${instructions}`,
    };
  }
  return { text, seconds: Number(text) };
}

/**
 * The refusal for a timestamp outside the replay window, or undefined when it is inside. The age
 * is counted in whole seconds (the current second less the timestamp), as Stripe's and Standard
 * Webhooks' own libraries count it, and a timestamp exactly `toleranceSeconds` old or ahead is
 * inside; the message reports the same age the check used. `header` names where the timestamp was.
 */
export function outsideWindow(
  timestampSeconds: number,
  nowMs: number,
  toleranceSeconds: number,
  header: string,
): Refusal | undefined {
  const ageSeconds = Math.floor(nowMs / 1000) - timestampSeconds;
  const distance = Math.abs(ageSeconds);
  if (distance <= toleranceSeconds) return undefined;
  const when =
    ageSeconds > 0
      ? `${counted(distance, "second")} old`
      : `${counted(distance, "second")} in the future`;
  const advice =
    timestampSeconds > 100_000_000_000
      ? "It looks like milliseconds: send the Unix time in seconds."
      : "Check that the sender's clock is right, and send a freshly signed request.";
  return {
    ok: false,
    code: "signature_expired",
    reason: `The timestamp in ${header} is ${when}, outside this source's tolerance of ${counted(toleranceSeconds, "second")}, so the request is refused as a possible replay. ${advice}`,
  };
}

/**
 * The signatures in a header value. With a prefix, only entries that start with it count (compared
 * without regard to case) and the prefix is removed; entries are separated by commas or spaces.
 */
export function signatureCandidates(value: string, prefix?: string): string[] {
  if (!prefix) return value.split(/[\s,]+/).filter((entry) => entry.length > 0);
  const lower = value.toLowerCase();
  const wanted = prefix.toLowerCase();
  const out: string[] = [];
  let from = 0;
  for (;;) {
    const at = lower.indexOf(wanted, from);
    if (at < 0) break;
    if (at > 0 && !SEPARATOR.test(value.charAt(at - 1))) {
      from = at + 1;
      continue;
    }
    let end = at + wanted.length;
    while (end < value.length && !SEPARATOR.test(value.charAt(end))) end++;
    const candidate = value.slice(at + wanted.length, end);
    if (candidate) out.push(candidate);
    from = end;
  }
  return out;
}

/** What an HMAC check needs; `createHmacVerifier` and the named HMAC schemes build one. */
export interface HmacCheck {
  algorithm: HmacAlgorithm;
  encoding: DigestEncoding;
  /** Lower-case header name. */
  header: string;
  prefix?: string;
  /** When false, the prefix is removed if present and tolerated if absent. */
  prefixRequired: boolean;
  /** Lower-case name of the timestamp header; when set, `<timestamp>.<raw body>` is signed. */
  timestampHeader?: string;
  scheme: string;
  /** The sentence telling the sender how to sign, added to refusals. */
  instructions: string;
  /** The advice given when no signature matches, instead of the generic one. */
  mismatchAdvice?: string;
  dedupeKey(headers: Headers, body: unknown): string | undefined;
}

/** A verifier for one HMAC check, keyed with the secret's UTF-8 bytes. */
export function createHmacCheck(check: HmacCheck, secret: string): Verifier {
  const shown = displayHeader(check.header);
  const signed = check.timestampHeader
    ? "the timestamp, a dot and the exact raw body"
    : "the exact raw body";
  return {
    verify(request, nowMs, toleranceSeconds) {
      const value = headerValue(request.headers, check.header)?.trim();
      if (!value) {
        return {
          ok: false,
          code: "signature_missing",
          reason: `The ${shown} header is missing. ${check.instructions}`,
        };
      }
      const candidates = signatureCandidates(
        value,
        check.prefixRequired ? check.prefix : undefined,
      );
      if (check.prefix && !check.prefixRequired) {
        const prefix = check.prefix.toLowerCase();
        for (let i = 0; i < candidates.length; i++) {
          const candidate = candidates[i] ?? "";
          if (candidate.toLowerCase().startsWith(prefix))
            candidates[i] = candidate.slice(prefix.length);
        }
      }
      if (candidates.length === 0) {
        return {
          ok: false,
          code: "signature_invalid",
          reason: check.prefix
            ? `The ${shown} header does not start with "${check.prefix}". ${check.instructions}`
            : `The ${shown} header holds no signature. ${check.instructions}`,
        };
      }
      let timestamp: { text: string; seconds: number } | undefined;
      if (check.timestampHeader) {
        const read = readTimestamp(request.headers, check.timestampHeader, check.instructions);
        if ("ok" in read) return read;
        timestamp = read;
      }
      const parts = timestamp ? [`${timestamp.text}.`, request.rawBody] : [request.rawBody];
      const expected = hmacDigest(check.algorithm, secret, parts, check.encoding);
      const given =
        check.encoding === "hex"
          ? candidates.map((candidate) => candidate.toLowerCase())
          : candidates;
      if (!matchesAny(given, expected)) {
        return {
          ok: false,
          code: "signature_invalid",
          reason: `The ${shown} header does not match the body. ${check.mismatchAdvice ?? `Check that the sender uses the same secret as this source and signs ${signed} with ${hmacLabel(check.algorithm)}, sending the ${check.encoding} digest.`}`,
        };
      }
      if (timestamp && check.timestampHeader) {
        const expired = outsideWindow(
          timestamp.seconds,
          nowMs,
          resolveTolerance(toleranceSeconds),
          displayHeader(check.timestampHeader),
        );
        if (expired) return expired;
      }
      return accepted(check.scheme, check.dedupeKey(request.headers, request.body));
    },
  };
}

/** The sentence telling a sender how to sign for a generic HMAC spec. */
export function hmacInstructions(spec: HmacSpec): string {
  const header = displayHeader(spec.header.trim().toLowerCase());
  const digest = `the ${spec.encoding} digest in ${header}${spec.prefix ? `, after "${spec.prefix}"` : ""}`;
  const algorithm = `${hmacLabel(spec.algorithm)} using the shared secret`;
  if (spec.signedContent === "timestamp.body" && spec.timestampHeader) {
    const timestamp = displayHeader(spec.timestampHeader.trim().toLowerCase());
    return `Send the current Unix time in seconds in ${timestamp}, sign "<that time>.<raw body>" with ${algorithm}, and send ${digest}.`;
  }
  return `Sign the raw body with ${algorithm} and send ${digest}.`;
}

/**
 * A verifier for a generic HMAC spec, keyed with `secret`. Throws when `signedContent` is
 * `timestamp.body` and no `timestampHeader` is named.
 */
export function createHmacVerifier(spec: HmacSpec, secret: string): Verifier {
  const timestampHeader =
    spec.signedContent === "timestamp.body"
      ? spec.timestampHeader?.trim().toLowerCase()
      : undefined;
  if (spec.signedContent === "timestamp.body" && !timestampHeader) {
    throw new Error(
      'An HMAC verifier that signs "timestamp.body" needs timestampHeader: the name of the header that carries the Unix timestamp, for example x-webhook-timestamp.',
    );
  }
  return createHmacCheck(
    {
      algorithm: spec.algorithm,
      encoding: spec.encoding,
      header: spec.header.trim().toLowerCase(),
      ...(spec.prefix ? { prefix: spec.prefix } : {}),
      prefixRequired: true,
      ...(timestampHeader ? { timestampHeader } : {}),
      scheme: `hmac-${spec.algorithm}`,
      instructions: hmacInstructions(spec),
      dedupeKey: deliveryDedupeKey,
    },
    secret,
  );
}
