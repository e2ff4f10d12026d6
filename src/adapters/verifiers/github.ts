/**
 * GitHub's scheme: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, keyed with the
 * webhook's secret as text; the dedupe key is `X-GitHub-Delivery`. Limits: GitHub signs no
 * timestamp, so there is no replay window (replays are caught by dedupe on the delivery id), and
 * the older SHA-1 `X-Hub-Signature` header is not accepted.
 */
import { filledHeader, type Verifier } from "../../domain/incoming.js";
import { createHmacCheck } from "./hmac.js";

export const GITHUB_SIGNATURE_HEADER = "x-hub-signature-256";
export const GITHUB_DELIVERY_HEADER = "x-github-delivery";

/** A verifier for `X-Hub-Signature-256` keyed with `secret`. */
export function createGithubVerifier(secret: string): Verifier {
  return createHmacCheck(
    {
      algorithm: "sha256",
      encoding: "hex",
      header: GITHUB_SIGNATURE_HEADER,
      prefix: "sha256=",
      prefixRequired: true,
      scheme: GITHUB_SIGNATURE_HEADER,
      instructions:
        "In the GitHub webhook settings, set the same secret as this source so that GitHub sends X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>.",
      mismatchAdvice:
        "Check that the secret in the GitHub webhook settings is the same as this source's secret, and that the body reaches Herald unchanged.",
      dedupeKey: (headers) => filledHeader(headers, GITHUB_DELIVERY_HEADER),
    },
    secret,
  );
}
