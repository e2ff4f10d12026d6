import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  timingSafeEqual,
} from "node:crypto";

/**
 * The key `bytes` gives for `secret`, imported once per cache: importing a key costs more than
 * signing a small body. Secrets are few (one per webhook or source); past 10,000 it starts over.
 */
function importedKey(
  cache: Map<string, KeyObject>,
  secret: string,
  bytes: (secret: string) => Buffer,
): KeyObject {
  let key = cache.get(secret);
  if (!key) {
    key = createSecretKey(bytes(secret));
    if (cache.size >= 10_000) cache.clear();
    cache.set(secret, key);
  }
  return key;
}

const textKeys = new Map<string, KeyObject>();
const utf8 = (text: string): Buffer => Buffer.from(text, "utf8");

/** The HMAC key of a secret: its UTF-8 bytes. */
export function hmacKey(secret: string): KeyObject {
  return importedKey(textKeys, secret, utf8);
}

/**
 * Hex HMAC-SHA256 of `body` keyed with the secret's UTF-8 bytes: the `X-Webhook-Signature` header,
 * which the API contract's verification snippet checks.
 */
export function signHex(secret: string, body: string | Buffer): string {
  return createHmac("sha256", hmacKey(secret)).update(body).digest("hex");
}

const WHSEC_PREFIX = "whsec_";
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** True when `text` is non-empty, padded base64 of the standard alphabet. */
export function isStrictBase64(text: string): boolean {
  return text.length > 0 && STRICT_BASE64.test(text);
}

/**
 * The key a secret in Standard Webhooks form (`whsec_` and the key's base64) stands for, or
 * undefined for a secret in any other form.
 */
export function whsecKey(secret: string): Buffer | undefined {
  if (!secret.startsWith(WHSEC_PREFIX)) return undefined;
  const encoded = secret.slice(WHSEC_PREFIX.length);
  return isStrictBase64(encoded) ? Buffer.from(encoded, "base64") : undefined;
}

const standardKeys = new Map<string, KeyObject>();

/**
 * The Standard Webhooks key of a webhook's secret: what a `whsec_<base64>` secret stands for, as
 * the standard's libraries read it (`new Webhook(secret)`); for any other secret its UTF-8 bytes,
 * the same key as `X-Webhook-Signature` (`new Webhook(Buffer.from(secret).toString("base64"))`).
 */
export function standardWebhooksKey(secret: string): KeyObject {
  return importedKey(standardKeys, secret, standardWebhooksBytes);
}

function standardWebhooksBytes(secret: string): Buffer {
  return whsecKey(secret) ?? utf8(secret);
}

/**
 * The Standard Webhooks signature `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with
 * `standardWebhooksKey(secret)`.
 */
export function signStandardWebhooks(
  secret: string,
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  const digest = createHmac("sha256", standardWebhooksKey(secret))
    .update(`${messageId}.${timestampSeconds}.`)
    .update(body)
    .digest("base64");
  return `v1,${digest}`;
}

/** The signature headers of one delivery attempt. */
export interface SignatureHeaders {
  "x-webhook-signature": string;
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/** Signs one attempt of a delivery; `nowMs` sets the Standard Webhooks timestamp. */
export function signDelivery(
  secret: string,
  deliveryId: string,
  body: string,
  nowMs: number,
): SignatureHeaders {
  const timestamp = Math.floor(nowMs / 1000);
  return {
    "x-webhook-signature": signHex(secret, body),
    "webhook-id": deliveryId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signStandardWebhooks(secret, deliveryId, timestamp, body),
  };
}

/**
 * Compares two digests (signatures) in constant time. Their length is public (it is fixed by the
 * algorithm), so unequal lengths are refused at once.
 */
export function digestEqual(given: string, expected: string): boolean {
  if (given.length !== expected.length) return false;
  const a = Buffer.from(given, "utf8");
  const b = Buffer.from(expected, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Compares two secrets (such as API keys) in time that depends on neither their contents nor their
 * lengths: both sides are hashed first.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}
