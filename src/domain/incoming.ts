import { HeraldError } from "./errors.js";
import { storableText } from "./text.js";

/** Request headers as Node gives them: lower-case names. */
export type Headers = Record<string, string | string[] | undefined>;

/** What a verifier sees of an incoming request: the exact bytes and the headers. */
export interface IncomingRequest {
  rawBody: Buffer;
  headers: Headers;
  /** The body parsed for reading (JSON, form or XML), when it could be. */
  body?: unknown;
}

/** The outcome of checking an incoming request's signature. */
export type Verification =
  | {
      ok: true;
      scheme: string;
      /** The provider's own id for this webhook (delivery or event id), when the scheme has one. */
      dedupeKey?: string;
    }
  | {
      ok: false;
      code: "signature_missing" | "signature_invalid" | "signature_expired";
      reason: string;
    };

/** Checks that an incoming request was sent by the holder of a source's secret. */
export interface Verifier {
  /** `toleranceSeconds` is the source's replay window for timestamped schemes. */
  verify(request: IncomingRequest, nowMs: number, toleranceSeconds?: number): Verification;
}

/** The body formats incoming webhooks may use. */
export type BodyKind = "json" | "form" | "xml" | "text";

/** What happened to an incoming webhook after it was stored. */
export type IncomingStatus = "received" | "routed" | "unrouted" | "failed";

/** An incoming webhook as stored: raw bytes kept so it can be verified and replayed later. */
export interface IncomingEvent {
  id: string;
  /** The source it was sent to. */
  service: string;
  eventName: string | null;
  /** The sender's id for this webhook (or a hash of the body), used to store it once. */
  dedupeKey: string | null;
  /** Request headers minus credentials. */
  headers: Record<string, string>;
  rawBody: Buffer;
  contentType: string | null;
  /** The scheme that accepted it; `none` when the source takes unverified webhooks. */
  verifiedBy: string;
  verified: boolean;
  /** received: stored, the source has no rules; routed: it became an outgoing event; unrouted: no rule matched; failed: a rule matched but could not be applied. */
  status: IncomingStatus;
  /** The outgoing event it produced, when routed. */
  outgoingEventId: string | null;
  /** Why routing failed, in words. */
  routeError: string | null;
  receivedAt: number;
}

/** An outgoing event an incoming webhook was routed to: when it came, or when it was replayed. */
export interface RoutedEvent {
  id: string;
  type: string;
  createdAt: number;
}

/** An incoming webhook with the outgoing events it was routed to, newest first. */
export interface IncomingEventDetail extends IncomingEvent {
  routedEvents: RoutedEvent[];
}

/** The first value of a header, if any. */
export function headerValue(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) return value[0];
  return value;
}

const CREDENTIAL_HEADERS = new Set([
  "authorization",
  "authentication",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "x-api-key",
]);

/**
 * Header names that say they carry a credential: a token, secret, password, passphrase,
 * credential, API key, private or signing key, or session, or any `x-auth-…` header. Signature
 * headers (`X-Webhook-Signature`, `Stripe-Signature`, `X-Hub-Signature-256`, `webhook-signature`)
 * name none of these and are kept: a signature is no secret, and shows what was checked.
 */
const CREDENTIAL_NAME =
  /token|secret|password|passwd|passphrase|credential|api[-_]?key|(?:private|signing)[-_]?key|session|^x-auth-/;

/**
 * Headers worth keeping with an incoming webhook: everything except credentials, which are the
 * CREDENTIAL_HEADERS, any header whose name says it holds a credential (see CREDENTIAL_NAME), and
 * `alsoSecret` (a token source's own header).
 */
export function storableHeaders(
  headers: Headers,
  alsoSecret: readonly string[] = [],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (
      value === undefined ||
      CREDENTIAL_HEADERS.has(name) ||
      CREDENTIAL_NAME.test(name) ||
      alsoSecret.includes(name)
    )
      continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** Parses an incoming JSON body, already read as text, or throws a 400 that says what is wrong. */
export function parseIncomingJson(text: string): unknown {
  if (text.length === 0) {
    throw new HeraldError("malformed_json", "The request body is empty. Send a JSON body.");
  }
  try {
    // A UTF-8 byte order mark is skipped for reading; the signature covers the bytes as sent.
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new HeraldError(
      "malformed_json",
      `The request body is not valid JSON (${(err as Error).message}). Send a JSON body.`,
    );
  }
}

/** A non-empty string field of a JSON object body, as sent. */
function textField(body: unknown, name: string): string | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return undefined;
  const value = (body as Record<string, unknown>)[name];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function field(body: unknown, name: string): string | undefined {
  const value = textField(body, name);
  // A sender's NUL (U+0000) would make a verified webhook unstorable on PostgreSQL; it becomes
  // the replacement character on every store alike, as a lone surrogate does.
  return value === undefined ? undefined : storableText(value);
}

/** An XML document's root element, when it holds child elements: `<order><event>…` reads as `order`. */
function xmlRoot(body: unknown): unknown {
  if (typeof body !== "object" || body === null) return undefined;
  const elements = Object.values(body);
  return elements.length === 1 && typeof elements[0] === "object" ? elements[0] : undefined;
}

/**
 * The incoming event's name: the `X-Webhook-Event` header, else GitHub's `X-GitHub-Event` (GitHub
 * names its events only there), else the body's `event` or `type` (in an XML body, also the
 * `<event>` or `<type>` child of the root element; the root element's own name is never read).
 */
export function incomingEventName(headers: Headers, body: unknown, kind?: BodyKind): string | null {
  const root = kind === "xml" ? xmlRoot(body) : undefined;
  return (
    filledHeader(headers, "x-webhook-event") ??
    filledHeader(headers, "x-github-event") ??
    field(body, "event") ??
    field(body, "type") ??
    field(root, "event") ??
    field(root, "type") ??
    null
  );
}

/** A header's first value trimmed, or undefined when it is absent or blank. */
export function filledHeader(headers: Headers, name: string): string | undefined {
  return headerValue(headers, name)?.trim() || undefined;
}

/**
 * The sender's id for this webhook: for Stripe, the event's `id`; else `X-Webhook-Delivery`, else
 * `webhook-id` (Standard Webhooks). Null when the sender gave none.
 */
export function incomingDedupeKey(service: string, headers: Headers, body: unknown): string | null {
  // As sent: the caller makes it storable without making two ids one.
  const fromBody = service === "stripe" ? textField(body, "id") : undefined;
  return (
    fromBody ??
    filledHeader(headers, "x-webhook-delivery") ??
    filledHeader(headers, "webhook-id") ??
    null
  );
}
