/**
 * A static shared token: in a named header, or as `Authorization: Bearer <token>` when no header is
 * named. With a named `authorization` header, the whole value or its Bearer token may match.
 * Limits: the token proves only that the sender knows it, not that the body is unchanged, and there
 * is no replay window; anyone who sees one request can send others. Prefer an HMAC scheme when the
 * sender offers one.
 */
import { headerValue, type Verifier } from "../../domain/incoming.js";
import { constantTimeEqual } from "../../domain/signing.js";
import type { TokenSpec } from "../../domain/verifier-specs.js";
import { accepted, deliveryDedupeKey, displayHeader, matchesAny } from "./hmac.js";

const BEARER = /^bearer\s+(\S+)$/i;

/** A verifier comparing the request's token with `secret`. */
export function createTokenVerifier(spec: TokenSpec, secret: string): Verifier {
  const named = spec.header?.trim().toLowerCase();
  const header = named || "authorization";
  const shown = displayHeader(header);
  const bearerOnly = !named;
  return {
    verify(request) {
      const value = headerValue(request.headers, header)?.trim();
      if (!value) {
        return {
          ok: false,
          code: "signature_missing",
          reason: bearerOnly
            ? "The Authorization header is missing. Send Authorization: Bearer <token>, with the token configured for this source."
            : `The ${shown} header is missing. Send the token configured for this source in ${shown}.`,
        };
      }
      const bearer = header === "authorization" ? BEARER.exec(value)?.[1] : undefined;
      if (bearerOnly && bearer === undefined) {
        return {
          ok: false,
          code: "signature_invalid",
          reason:
            'The Authorization header is not in the form "Bearer <token>". Send Authorization: Bearer <token>, with the token configured for this source.',
        };
      }
      const candidates = bearerOnly || bearer === undefined ? [bearer ?? value] : [bearer, value];
      // A token's length is as secret as its contents, so both sides are hashed before comparing.
      if (!matchesAny(candidates, secret, constantTimeEqual)) {
        return {
          ok: false,
          code: "signature_invalid",
          reason: bearerOnly
            ? "The token in the Authorization header is not the one configured for this source. Send Authorization: Bearer <token> with this source's current token."
            : `The token in the ${shown} header is not the one configured for this source. Send this source's current token in ${shown}.`,
        };
      }
      return accepted("token", deliveryDedupeKey(request.headers));
    },
  };
}
