/**
 * The API contract's incoming scheme: `X-Webhook-Signature` holds the hex HMAC-SHA256 of the raw body.
 * A `sha256=` prefix (GitHub's style) is accepted too. Limits: no timestamp, so no replay window;
 * replays are caught by dedupe on the delivery id instead.
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import { constantTimeEqual, signHex } from "../../domain/signing.js";

export const HEX_SIGNATURE_HEADER = "x-webhook-signature";

/** A verifier for `X-Webhook-Signature` keyed with `secret`. */
export function createHexHmacVerifier(secret: string): Verifier {
  return {
    verify(request) {
      const header = headerValue(request.headers, HEX_SIGNATURE_HEADER);
      if (!header) {
        return {
          ok: false,
          code: "signature_missing",
          reason:
            "The X-Webhook-Signature header is missing. Sign the raw body with HMAC-SHA256 using the shared secret and send the hex digest in X-Webhook-Signature.",
        };
      }
      const given = header
        .trim()
        .replace(/^sha256=/i, "")
        .toLowerCase();
      const expected = signHex(secret, request.rawBody);
      if (!constantTimeEqual(given, expected)) {
        return {
          ok: false,
          code: "signature_invalid",
          reason:
            "The X-Webhook-Signature header does not match the body. Check that the sender uses the same secret and signs the exact raw body bytes.",
        };
      }
      return { ok: true, scheme: "x-webhook-signature" };
    },
  };
}
