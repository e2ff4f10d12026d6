import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/**
 * Hex HMAC-SHA256 of `body` keyed with the secret's UTF-8 bytes: the `X-Webhook-Signature` header,
 * which the API contract's verification snippet checks.
 */
export function signHex(secret: string, body: string | Buffer): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

/**
 * The Standard Webhooks signature `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
 * The key is the secret's UTF-8 bytes, the same key as `X-Webhook-Signature`; with the
 * `standardwebhooks` library that is `new Webhook(Buffer.from(secret).toString("base64"))`.
 */
export function signStandardWebhooks(
  secret: string,
  messageId: string,
  timestampSeconds: number,
  body: string,
): string {
  const digest = createHmac("sha256", secret)
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
 * Compares two strings in time that depends only on their lengths' digests, never on where they differ.
 * Both sides are hashed first, so unequal lengths leak nothing either.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}
