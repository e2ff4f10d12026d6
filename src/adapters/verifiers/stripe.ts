/**
 * Stripe's scheme: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`,
 * keyed with the endpoint secret (`whsec_…`) as text. Several v1 values are allowed (Stripe sends two
 * while a secret is being rolled). Timestamps older or newer than the tolerance are refused.
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import { constantTimeEqual, signHex } from "../../domain/signing.js";

export const STRIPE_SIGNATURE_HEADER = "stripe-signature";
export const STRIPE_TOLERANCE_SECONDS = 300;

/** A verifier for `Stripe-Signature` keyed with `secret`. */
export function createStripeVerifier(
  secret: string,
  toleranceSeconds = STRIPE_TOLERANCE_SECONDS,
): Verifier {
  return {
    verify(request, nowMs) {
      const header = headerValue(request.headers, STRIPE_SIGNATURE_HEADER);
      if (!header) {
        return {
          ok: false,
          code: "signature_missing",
          reason: "The Stripe-Signature header is missing.",
        };
      }
      let timestamp: number | undefined;
      const candidates: string[] = [];
      for (const part of header.split(",")) {
        const eq = part.indexOf("=");
        if (eq < 0) continue;
        const key = part.slice(0, eq).trim();
        const value = part.slice(eq + 1).trim();
        if (key === "t" && /^\d+$/.test(value)) timestamp = Number(value);
        else if (key === "v1") candidates.push(value.toLowerCase());
      }
      if (timestamp === undefined || candidates.length === 0) {
        return {
          ok: false,
          code: "signature_invalid",
          reason:
            "The Stripe-Signature header must hold t=<timestamp> and at least one v1=<signature>.",
        };
      }
      const expected = signHex(
        secret,
        Buffer.concat([Buffer.from(`${timestamp}.`), request.rawBody]),
      );
      // Every candidate is compared, so the time taken does not reveal which one matched.
      let matched = false;
      for (const candidate of candidates)
        matched = constantTimeEqual(candidate, expected) || matched;
      if (!matched) {
        return {
          ok: false,
          code: "signature_invalid",
          reason:
            "The Stripe-Signature does not match the body. Check that HERALD_INCOMING_SECRET_STRIPE holds this endpoint's signing secret (whsec_…).",
        };
      }
      const ageSeconds = Math.abs(nowMs / 1000 - timestamp);
      if (ageSeconds > toleranceSeconds) {
        return {
          ok: false,
          code: "signature_expired",
          reason: `The Stripe-Signature timestamp is ${Math.round(ageSeconds)} s away from now, outside the ${toleranceSeconds} s tolerance. Replayed or delayed requests are refused; check the sender's clock.`,
        };
      }
      return { ok: true, scheme: "stripe-signature" };
    },
  };
}
