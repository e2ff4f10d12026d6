/**
 * Chooses a verifier by which signature header the request carries, so one source can accept
 * several schemes (Stripe's own, or the contract's X-Webhook-Signature). With none present (or
 * only blank ones), the answer says which headers would do.
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import { displayHeader } from "./hmac.js";

/** Pairs of (header that selects the scheme, verifier of that scheme), tried in order. */
export function createFirstPresentVerifier(
  schemes: Array<[header: string, verifier: Verifier]>,
): Verifier {
  return {
    verify(request, nowMs, toleranceSeconds) {
      for (const [header, verifier] of schemes) {
        // A blank header is no signature: the next scheme's header may hold one.
        if (headerValue(request.headers, header)?.trim())
          return verifier.verify(request, nowMs, toleranceSeconds);
      }
      const names = schemes.map(([header]) => displayHeader(header)).join(" or ");
      return {
        ok: false,
        code: "signature_missing",
        reason: `No signature header was sent. Send one of: ${names}.`,
      };
    },
  };
}
