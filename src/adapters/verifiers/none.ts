/**
 * No verification: every request is accepted, whoever sent it. Limits: nothing is proven about the
 * sender or the body, and no dedupe key is given (the caller falls back to a hash of the body), so
 * an unverified sender cannot claim another delivery's id.
 */
import type { Verifier } from "../../domain/incoming.js";

/** A verifier that accepts every request, with scheme `none`. */
export function createNoneVerifier(): Verifier {
  return {
    verify() {
      return { ok: true, scheme: "none" };
    },
  };
}
