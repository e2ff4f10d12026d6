/**
 * Standard Webhooks (standardwebhooks.com): headers `webhook-id`, `webhook-timestamp` and
 * `webhook-signature`; the signature is base64 HMAC-SHA256 of `<id>.<timestamp>.<raw body>`, sent
 * as space-separated `v1,<base64>` entries, any one of which may match (several while a secret is
 * rotated; other versions such as the asymmetric `v1a` are ignored). The key is the base64 decoding
 * of the secret without its `whsec_` prefix. Timestamps outside the source's tolerance are refused;
 * the dedupe key is `webhook-id`. Limits: only the symmetric v1 scheme is checked.
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import { isStrictBase64, whsecKey } from "../../domain/signing.js";
import { listed } from "../../domain/text.js";
import {
  accepted,
  hmacDigest,
  matchesAny,
  outsideWindow,
  readTimestamp,
  resolveTolerance,
} from "./hmac.js";

const ID_HEADER = "webhook-id";
const TIMESTAMP_HEADER = "webhook-timestamp";
const SIGNATURE_HEADER = "webhook-signature";
const SECRET_PREFIX = "whsec_";

const HOW_TO_SIGN =
  'Send webhook-id, webhook-timestamp (Unix time in seconds) and webhook-signature: "v1," followed by the base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<raw body>", keyed with the base64-decoded secret (without "whsec_").';

/**
 * The HMAC key of a Standard Webhooks secret: the base64 decoding of the secret once an optional
 * `whsec_` prefix is removed, or the whole secret's UTF-8 bytes when that is not valid base64.
 */
export function standardWebhooksKey(secret: string): Buffer {
  const prefixed = whsecKey(secret);
  if (prefixed) return prefixed;
  if (isStrictBase64(secret)) return Buffer.from(secret, "base64");
  // A secret that is not base64 cannot be the encoded key the standard describes, so it is taken to
  // be a plain-text key, as senders that hand out plain-text secrets use it.
  return Buffer.from(secret, "utf8");
}

/**
 * Every key a secret may stand for. Without the `whsec_` prefix a secret that happens to be valid
 * base64 (Herald's own hex secrets are) may still be meant as text, as Herald signs with it; both
 * readings are tried. Either way the key is derived from the same secret.
 */
function candidateKeys(secret: string): Buffer[] {
  const key = standardWebhooksKey(secret);
  const text = Buffer.from(secret, "utf8");
  return secret.startsWith(SECRET_PREFIX) || key.equals(text) ? [key] : [key, text];
}

/** A verifier for Standard Webhooks keyed with `secret` (`whsec_<base64>`). */
export function createStandardWebhooksVerifier(secret: string): Verifier {
  const keys = candidateKeys(secret);
  return {
    verify(request, nowMs, toleranceSeconds) {
      const id = headerValue(request.headers, ID_HEADER)?.trim();
      const signatures = headerValue(request.headers, SIGNATURE_HEADER)?.trim();
      const missing = [
        id ? undefined : ID_HEADER,
        headerValue(request.headers, TIMESTAMP_HEADER)?.trim() ? undefined : TIMESTAMP_HEADER,
        signatures ? undefined : SIGNATURE_HEADER,
      ].filter((name) => name !== undefined);
      if (!id || !signatures || missing.length > 0) {
        return {
          ok: false,
          code: "signature_missing",
          reason: `The ${listed(missing)} ${missing.length === 1 ? "header is" : "headers are"} missing. ${HOW_TO_SIGN}`,
        };
      }
      const timestamp = readTimestamp(request.headers, TIMESTAMP_HEADER, HOW_TO_SIGN);
      if ("ok" in timestamp) return timestamp;
      const candidates: string[] = [];
      for (const entry of signatures.split(/\s+/)) {
        const comma = entry.indexOf(",");
        if (comma > 0 && entry.slice(0, comma) === "v1" && comma < entry.length - 1) {
          candidates.push(entry.slice(comma + 1));
        }
      }
      if (candidates.length === 0) {
        return {
          ok: false,
          code: "signature_invalid",
          reason: `The webhook-signature header holds no "v1,<base64>" signature. ${HOW_TO_SIGN}`,
        };
      }
      // Every key is tried, so the time taken does not tell which one matched.
      let matched = false;
      for (const key of keys) {
        const expected = hmacDigest(
          "sha256",
          key,
          [`${id}.${timestamp.text}.`, request.rawBody],
          "base64",
        );
        matched = matchesAny(candidates, expected) || matched;
      }
      if (!matched) {
        return {
          ok: false,
          code: "signature_invalid",
          reason:
            "The webhook-signature header does not match the body. Check that the sender uses the same secret as this source and signs the exact raw body with the webhook-id and webhook-timestamp it sends.",
        };
      }
      const expired = outsideWindow(
        timestamp.seconds,
        nowMs,
        resolveTolerance(toleranceSeconds),
        "webhook-timestamp",
      );
      if (expired) return expired;
      return accepted("standard-webhooks", id);
    },
  };
}
