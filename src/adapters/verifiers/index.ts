/**
 * The verifier catalogue: builds the verifier a source's spec names, and describes it in one line.
 * Limits: the spec is taken as already validated; only a missing secret (or a timestamped HMAC spec
 * without its timestamp header) is refused here.
 */
import type { Verifier } from "../../domain/incoming.js";
import { VERIFIER_TYPES, type VerifierSpec } from "../../domain/verifier-specs.js";
import { createGithubVerifier } from "./github.js";
import { createHmacVerifier, displayHeader, hmacLabel } from "./hmac.js";
import { createNoneVerifier } from "./none.js";
import { createStandardWebhooksVerifier } from "./standard-webhooks.js";
import { createStripeVerifier } from "./stripe.js";
import { createTokenVerifier } from "./token.js";
import { createXanoVerifier } from "./xano.js";

const SCHEME_NAMES: Record<VerifierSpec["type"], string> = {
  hmac: "HMAC",
  token: "token",
  stripe: "Stripe",
  github: "GitHub",
  "standard-webhooks": "Standard Webhooks",
  xano: "Xano",
  none: "unverified",
};

/**
 * The verifier for `spec`, keyed with `secret`. Throws when the spec needs a secret (every type
 * except `none`) and `secret` is missing or empty.
 */
export function createVerifier(spec: VerifierSpec, secret: string | undefined): Verifier {
  if (spec.type === "none") return createNoneVerifier();
  if (secret === undefined || secret.length === 0) {
    throw new Error(
      `The ${SCHEME_NAMES[spec.type]} verifier needs a secret, and none is set. Set this source's secret to the one the sender uses, or choose the type "none" to accept webhooks unverified.`,
    );
  }
  switch (spec.type) {
    case "hmac":
      return createHmacVerifier(spec, secret);
    case "token":
      return createTokenVerifier(spec, secret);
    case "stripe":
      return createStripeVerifier(secret);
    case "github":
      return createGithubVerifier(secret);
    case "standard-webhooks":
      return createStandardWebhooksVerifier(secret);
    case "xano":
      return createXanoVerifier(spec, secret);
    default:
      return unknownType(spec);
  }
}

/**
 * One line saying how `spec` checks requests, e.g.
 * "HMAC-SHA512 (base64) of timestamp.body in X-Signature, timestamp in X-Timestamp".
 */
export function describeVerifier(spec: VerifierSpec): string {
  switch (spec.type) {
    case "hmac": {
      const header = displayHeader(spec.header.trim().toLowerCase());
      const prefix = spec.prefix ? ` after "${spec.prefix}"` : "";
      const timestamp =
        spec.signedContent === "timestamp.body" && spec.timestampHeader
          ? `, timestamp in ${displayHeader(spec.timestampHeader.trim().toLowerCase())}`
          : "";
      return `${hmacLabel(spec.algorithm)} (${spec.encoding}) of ${spec.signedContent} in ${header}${prefix}${timestamp}`;
    }
    case "token":
      return spec.header?.trim()
        ? `Static token in ${displayHeader(spec.header.trim().toLowerCase())}`
        : "Bearer token in Authorization";
    case "stripe":
      return "Stripe: HMAC-SHA256 (hex) of timestamp.body in Stripe-Signature";
    case "github":
      return 'GitHub: HMAC-SHA256 (hex) of body in X-Hub-Signature-256 after "sha256="';
    case "standard-webhooks":
      return "Standard Webhooks: HMAC-SHA256 (base64) of id.timestamp.body in webhook-signature";
    case "xano":
      return `Xano: ${hmacLabel(spec.algorithm ?? "sha256")} (hex) of body in X-Webhook-Signature`;
    case "none":
      return "No verification: every request is accepted and shown as unverified";
    default:
      return unknownType(spec);
  }
}

function unknownType(spec: never): never {
  throw new Error(
    `Unknown verifier type "${(spec as { type?: unknown }).type}". Use one of: ${VERIFIER_TYPES.join(", ")}.`,
  );
}
