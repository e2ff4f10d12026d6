/**
 * How a source checks who sent a webhook: one spec per signature scheme. A spec holds the scheme's
 * settings; the secret is kept apart from it, since it is write-only.
 */
import { HeraldError } from "./errors.js";

export type HmacAlgorithm = "sha256" | "sha384" | "sha512";
export type DigestEncoding = "hex" | "base64";

/** A generic HMAC signature in a header. */
export interface HmacSpec {
  type: "hmac";
  algorithm: HmacAlgorithm;
  encoding: DigestEncoding;
  /** The header holding the signature, e.g. `x-signature`. */
  header: string;
  /** Text before the digest in the header, e.g. `sha256=`. */
  prefix?: string;
  /** What is signed: the raw body, or `<timestamp>.<raw body>`. */
  signedContent: "body" | "timestamp.body";
  /** The header holding the Unix timestamp (seconds), when `signedContent` is `timestamp.body`. */
  timestampHeader?: string;
}

/** A static token in a named header, or `Authorization: Bearer <token>` when no header is named. */
export interface TokenSpec {
  type: "token";
  header?: string;
}

/** Stripe's `Stripe-Signature: t=…,v1=…`. */
export interface StripeSpec {
  type: "stripe";
}

/** GitHub's `X-Hub-Signature-256: sha256=<hex>`; dedupe on `X-GitHub-Delivery`. */
export interface GithubSpec {
  type: "github";
}

/** Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`; `whsec_` secrets. */
export interface StandardWebhooksSpec {
  type: "standard-webhooks";
}

/** Xano and the API contract: `X-Webhook-Signature` hex HMAC of the raw body (sha256, 384 or 512). */
export interface XanoSpec {
  type: "xano";
  algorithm?: HmacAlgorithm;
}

/** No verification at all: only when the source says so explicitly; shown as unverified. */
export interface NoneSpec {
  type: "none";
}

export type VerifierSpec =
  | HmacSpec
  | TokenSpec
  | StripeSpec
  | GithubSpec
  | StandardWebhooksSpec
  | XanoSpec
  | NoneSpec;

export type VerifierType = VerifierSpec["type"];

export const VERIFIER_TYPES: readonly VerifierType[] = [
  "hmac",
  "token",
  "stripe",
  "github",
  "standard-webhooks",
  "xano",
  "none",
];

/** Default replay window of timestamped schemes, in seconds. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** A verifier spec as a client may send it: only `type` is required, the rest has defaults. */
export interface VerifierSpecInput {
  type: VerifierType;
  algorithm?: HmacAlgorithm;
  encoding?: DigestEncoding;
  header?: string;
  prefix?: string;
  signedContent?: "body" | "timestamp.body";
  timestampHeader?: string;
}

/** The options each type takes beside `type`; any other would be dropped without a word. */
const OPTIONS: Record<VerifierType, ReadonlyArray<keyof VerifierSpecInput>> = {
  hmac: ["algorithm", "encoding", "header", "prefix", "signedContent", "timestampHeader"],
  token: ["header"],
  xano: ["algorithm"],
  stripe: [],
  github: [],
  "standard-webhooks": [],
  none: [],
};

/**
 * Fills a spec's defaults; header names are lower-cased. Throws a 400 for an option its type does
 * not take (a sender's signature in a header the verifier never reads would be refused every
 * time), and for a prefix no header can carry.
 */
export function normalizeVerifierSpec(input: VerifierSpecInput): VerifierSpec {
  const taken = OPTIONS[input.type] ?? [];
  const foreign = (Object.keys(input) as Array<keyof VerifierSpecInput>).find(
    (key) => key !== "type" && input[key] !== undefined && !taken.includes(key),
  );
  if (foreign !== undefined) {
    throw new HeraldError(
      "validation_failed",
      `verifier.${foreign} is not an option of the '${input.type}' verifier${taken.length === 0 ? ", which takes none" : `, which takes ${taken.join(", ")}`}. Remove it, or choose the verifier type it belongs to.`,
      `verifier.${foreign}`,
    );
  }
  if (input.type === "hmac" && input.timestampHeader && input.signedContent !== "timestamp.body") {
    throw new HeraldError(
      "validation_failed",
      'verifier.timestampHeader is read only when verifier.signedContent is "timestamp.body". Set both, or neither.',
      "verifier.timestampHeader",
    );
  }
  if (input.prefix !== undefined && !/^[\x20-\x7e]*$/.test(input.prefix)) {
    throw new HeraldError(
      "validation_failed",
      "verifier.prefix must be printable ASCII text, as a header value carries it (no line breaks or other control characters).",
      "verifier.prefix",
    );
  }
  const lower = (name: string | undefined) => name?.trim().toLowerCase();
  switch (input.type) {
    case "hmac": {
      const spec: HmacSpec = {
        type: "hmac",
        algorithm: input.algorithm ?? "sha256",
        encoding: input.encoding ?? "hex",
        header: lower(input.header) ?? "x-webhook-signature",
        signedContent: input.signedContent ?? "body",
      };
      if (input.prefix) spec.prefix = input.prefix;
      const timestampHeader = lower(input.timestampHeader);
      if (timestampHeader) spec.timestampHeader = timestampHeader;
      return spec;
    }
    case "token": {
      const header = lower(input.header);
      return header ? { type: "token", header } : { type: "token" };
    }
    case "xano":
      return input.algorithm ? { type: "xano", algorithm: input.algorithm } : { type: "xano" };
    default:
      return { type: input.type };
  }
}
