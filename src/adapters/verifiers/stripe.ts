/**
 * Stripe's scheme: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]`,
 * keyed with the endpoint secret (`whsec_…`) as text. Several v1 values are allowed (Stripe sends two
 * while a secret is being rolled); other versions (v0) are ignored. Timestamps older or newer than
 * the tolerance are refused. The dedupe key is the event's `id`, read from the parsed body only:
 * without `request.body` there is none.
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import { accepted, hmacDigest, matchesAny, outsideWindow, resolveTolerance } from "./hmac.js";

export const STRIPE_SIGNATURE_HEADER = "stripe-signature";
export const STRIPE_TOLERANCE_SECONDS = 300;

const HOW_TO_SIGN =
  "This source accepts only events signed by Stripe: add this URL as a webhook endpoint in the Stripe dashboard and let Stripe send the events.";

/** The Stripe event's `id` in a parsed body, when it has one. */
export function stripeEventId(body: unknown): string | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return undefined;
  const id = (body as Record<string, unknown>).id;
  return typeof id === "string" && id.length > 0 ? id : undefined;
}

/**
 * A verifier for `Stripe-Signature` keyed with `secret`. `toleranceSeconds` is the replay window
 * used when `verify` is not given one.
 */
export function createStripeVerifier(
  secret: string,
  toleranceSeconds = STRIPE_TOLERANCE_SECONDS,
): Verifier {
  return {
    verify(request, nowMs, sourceTolerance) {
      const header = headerValue(request.headers, STRIPE_SIGNATURE_HEADER);
      if (!header) {
        return {
          ok: false,
          code: "signature_missing",
          reason: `The Stripe-Signature header is missing. ${HOW_TO_SIGN}`,
        };
      }
      let timestamp: { text: string; seconds: number } | undefined;
      const candidates: string[] = [];
      for (const part of header.split(",")) {
        const eq = part.indexOf("=");
        if (eq < 0) continue;
        const key = part.slice(0, eq).trim();
        const value = part.slice(eq + 1).trim();
        if (key === "t" && /^\d{1,15}$/.test(value))
          timestamp = { text: value, seconds: Number(value) };
        else if (key === "v1" && value) candidates.push(value.toLowerCase());
      }
      if (timestamp === undefined || candidates.length === 0) {
        return {
          ok: false,
          code: "signature_invalid",
          reason: `The Stripe-Signature header must hold t=<Unix time in seconds> and at least one v1=<signature>. ${HOW_TO_SIGN}`,
        };
      }
      const expected = hmacDigest("sha256", secret, [`${timestamp.text}.`, request.rawBody], "hex");
      if (!matchesAny(candidates, expected)) {
        return {
          ok: false,
          code: "signature_invalid",
          reason:
            "The Stripe-Signature header does not match the body. Check that the secret configured for this source is this endpoint's signing secret (whsec_…) from the Stripe dashboard, and that the body reaches Herald unchanged.",
        };
      }
      const expired = outsideWindow(
        timestamp.seconds,
        nowMs,
        resolveTolerance(sourceTolerance, toleranceSeconds),
        "Stripe-Signature",
      );
      if (expired) return expired;
      return accepted("stripe-signature", stripeEventId(request.body));
    },
  };
}

/**
 * `verifier` with the dedupe key of an accepted request replaced by the Stripe event's `id`, when
 * the body has one: for a Stripe source that also takes another scheme, whose delivery id comes
 * from a header that scheme may not sign.
 */
export function keyedByStripeEventId(verifier: Verifier): Verifier {
  return {
    verify(request, nowMs, toleranceSeconds) {
      const verification = verifier.verify(request, nowMs, toleranceSeconds);
      if (!verification.ok) return verification;
      const id = stripeEventId(request.body);
      return id === undefined ? verification : { ...verification, dedupeKey: id };
    },
  };
}
