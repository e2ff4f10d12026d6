/**
 * Xano's and the API contract's scheme: `X-Webhook-Signature` holds the hex HMAC of the raw body,
 * SHA-256 by default or SHA-384/SHA-512 as configured, keyed with the secret as text. A
 * `sha256=`/`sha384=`/`sha512=` prefix is tolerated when it names the configured algorithm.
 * Several signatures may be sent, separated by commas or spaces. Limits: no timestamp, so no replay
 * window; replays are caught by dedupe on `X-Webhook-Delivery` (or `webhook-id`).
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import type { HmacAlgorithm, XanoSpec } from "../../domain/verifier-specs.js";
import { createHmacCheck, deliveryDedupeKey, hmacLabel } from "./hmac.js";

export const XANO_SIGNATURE_HEADER = "x-webhook-signature";

const LABELLED = /(?:^|[\s,])(sha256|sha384|sha512)=/gi;

/** A verifier for `X-Webhook-Signature` keyed with `secret`. */
export function createXanoVerifier(spec: XanoSpec, secret: string): Verifier {
  const algorithm: HmacAlgorithm = spec.algorithm ?? "sha256";
  const instructions = `Sign the raw body with ${hmacLabel(algorithm)} using the shared secret and send the hex digest in X-Webhook-Signature.`;
  const check = createHmacCheck(
    {
      algorithm,
      encoding: "hex",
      header: XANO_SIGNATURE_HEADER,
      prefix: `${algorithm}=`,
      prefixRequired: false,
      scheme: XANO_SIGNATURE_HEADER,
      instructions,
      dedupeKey: deliveryDedupeKey,
    },
    secret,
  );
  return {
    verify(request, nowMs, toleranceSeconds) {
      const value = headerValue(request.headers, XANO_SIGNATURE_HEADER) ?? "";
      const labels = [...value.matchAll(LABELLED)].map((match) => (match[1] ?? "").toLowerCase());
      if (labels.length > 0 && !labels.includes(algorithm)) {
        return {
          ok: false,
          code: "signature_invalid",
          reason: `The X-Webhook-Signature header is labelled "${labels[0]}=", but this source expects ${hmacLabel(algorithm)}. ${instructions}`,
        };
      }
      return check.verify(request, nowMs, toleranceSeconds);
    },
  };
}
