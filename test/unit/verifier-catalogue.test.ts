import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { sign as githubSign } from "@octokit/webhooks-methods";
import { Webhook } from "standardwebhooks";
import Stripe from "stripe";
import { createGithubVerifier } from "../../src/adapters/verifiers/github.js";
import { createHmacVerifier } from "../../src/adapters/verifiers/hmac.js";
import { createVerifier, describeVerifier } from "../../src/adapters/verifiers/index.js";
import { createNoneVerifier } from "../../src/adapters/verifiers/none.js";
import {
  createStandardWebhooksVerifier,
  standardWebhooksKey,
} from "../../src/adapters/verifiers/standard-webhooks.js";
import { createStripeVerifier } from "../../src/adapters/verifiers/stripe.js";
import { createTokenVerifier } from "../../src/adapters/verifiers/token.js";
import { createXanoVerifier } from "../../src/adapters/verifiers/xano.js";
import type { Headers, Verification, Verifier } from "../../src/domain/incoming.js";
import type { HmacSpec } from "../../src/domain/verifier-specs.js";

const payload = '{"id":"evt_123","type":"record.created","data":{"id":1,"name":"Zoë"}}';
const rawBody = Buffer.from(payload);
const tampered = Buffer.from(payload.replace('"id":1', '"id":2'));
const NOW = 1_800_000_000_000;
const nowSeconds = NOW / 1000;
const TEN_MINUTES_AGO = nowSeconds - 600;

function digest(
  algorithm: string,
  key: string | Buffer,
  data: string | Buffer,
  encoding: "hex" | "base64",
) {
  return createHmac(algorithm, key).update(data).digest(encoding);
}

/** An hmac verifier with the given settings over the defaults (sha256, hex, x-signature, body). */
const HMAC_SECRET = "hmac-shared-secret";
const hmacVerifier = (spec: Partial<HmacSpec>, key = HMAC_SECRET) =>
  createHmacVerifier(
    {
      type: "hmac",
      algorithm: "sha256",
      encoding: "hex",
      header: "x-signature",
      signedContent: "body",
      ...spec,
    } as HmacSpec,
    key,
  );

/** What `verifier` makes of `body` (by default the signed payload) sent with `headers`, now. */
const check = (verifier: Verifier, headers: Headers, body: Buffer = rawBody) =>
  verifier.verify({ rawBody: body, headers }, NOW);

function refusedWith(result: Verification, code: string): string {
  assert.equal(result.ok, false, `expected a refusal with ${code}`);
  if (result.ok) return "";
  assert.equal(result.code, code, result.reason);
  assert.match(result.reason, /^[A-Z].*\.$/s, "the reason is a full sentence");
  return result.reason;
}

function assertNoSecret(result: Verification, ...secrets: string[]): void {
  if (result.ok) return;
  for (const secret of secrets) assert.ok(!result.reason.includes(secret), result.reason);
}

describe("hmac verifier", () => {
  const secret = HMAC_SECRET;

  test("sha384 hex of the body is accepted, in any case", () => {
    const verifier = hmacVerifier({ algorithm: "sha384", header: "X-Signature" });
    const signature = digest("sha384", secret, rawBody, "hex");
    assert.deepEqual(check(verifier, { "x-signature": signature }), {
      ok: true,
      scheme: "hmac-sha384",
    });
    const upper = verifier.verify(
      { rawBody, headers: { "x-signature": signature.toUpperCase() } },
      NOW,
    );
    assert.equal(upper.ok, true);
  });

  test("sha512 base64 is compared exactly, a tampered body and a wrong secret are refused", () => {
    const verifier = hmacVerifier({ algorithm: "sha512", encoding: "base64" });
    const signature = digest("sha512", secret, rawBody, "base64");
    assert.equal(check(verifier, { "x-signature": signature }).ok, true);
    refusedWith(check(verifier, { "x-signature": signature.toLowerCase() }), "signature_invalid");
    const reason = refusedWith(
      check(verifier, { "x-signature": signature }, tampered),
      "signature_invalid",
    );
    assert.match(reason, /X-Signature/);
    const wrong = verifier.verify(
      { rawBody, headers: { "x-signature": digest("sha512", "other", rawBody, "base64") } },
      NOW,
    );
    refusedWith(wrong, "signature_invalid");
    assertNoSecret(wrong, secret);
    refusedWith(check(verifier, {}), "signature_missing");
  });

  test("a configured prefix is stripped, and required", () => {
    const verifier = hmacVerifier({ prefix: "sha256=" });
    const signature = digest("sha256", secret, rawBody, "hex");
    assert.equal(check(verifier, { "x-signature": `sha256=${signature}` }).ok, true);
    const reason = refusedWith(check(verifier, { "x-signature": signature }), "signature_invalid");
    assert.match(reason, /"sha256="/);
  });

  test("several signatures separated by commas or spaces are accepted when one matches", () => {
    const verifier = hmacVerifier({ prefix: "sha256=" });
    const good = digest("sha256", secret, rawBody, "hex");
    const old = digest("sha256", "old-secret", rawBody, "hex");
    for (const header of [`sha256=${old},sha256=${good}`, `sha256=${old} sha256=${good}`]) {
      assert.equal(check(verifier, { "x-signature": header }).ok, true);
    }
    const bothOld = `sha256=${old}, sha256=${digest("sha256", "older", rawBody, "hex")}`;
    refusedWith(check(verifier, { "x-signature": bothOld }), "signature_invalid");
  });

  test("a prefix containing a comma, such as v1, still separates rotated signatures", () => {
    const verifier = hmacVerifier({ encoding: "base64", header: "x-sig", prefix: "v1," });
    const good = digest("sha256", secret, rawBody, "base64");
    const old = digest("sha256", "old", rawBody, "base64");
    assert.equal(check(verifier, { "x-sig": `v1,${old} v1,${good}` }).ok, true);
  });

  describe("timestamp.body", () => {
    const spec: HmacSpec = {
      type: "hmac",
      algorithm: "sha512",
      encoding: "hex",
      header: "x-signature",
      signedContent: "timestamp.body",
      timestampHeader: "X-Timestamp",
    };
    const verifier = createHmacVerifier(spec, secret);
    const signedAt = (seconds: number, key = secret, body: Buffer = rawBody): Headers => ({
      "x-signature": digest(
        "sha512",
        key,
        Buffer.concat([Buffer.from(`${seconds}.`), body]),
        "hex",
      ),
      "x-timestamp": String(seconds),
    });

    test("a fresh request is accepted; a tampered body or a wrong secret is refused", () => {
      assert.equal(check(verifier, signedAt(nowSeconds - 30)).ok, true);
      refusedWith(check(verifier, signedAt(nowSeconds), tampered), "signature_invalid");
      refusedWith(check(verifier, signedAt(nowSeconds, "wrong")), "signature_invalid");
    });

    test("a signature over the body alone is refused", () => {
      const headers = {
        "x-signature": digest("sha512", secret, rawBody, "hex"),
        "x-timestamp": String(nowSeconds),
      };
      refusedWith(verifier.verify({ rawBody, headers }, NOW), "signature_invalid");
    });

    test("a 10-minute-old timestamp is refused as expired, unless the tolerance allows it", () => {
      const headers = signedAt(TEN_MINUTES_AGO);
      const reason = refusedWith(verifier.verify({ rawBody, headers }, NOW), "signature_expired");
      assert.match(reason, /600 seconds old/);
      assert.match(reason, /300 seconds/);
      assert.equal(verifier.verify({ rawBody, headers }, NOW, 3600).ok, true);
      const future = refusedWith(check(verifier, signedAt(nowSeconds + 600)), "signature_expired");
      assert.match(future, /in the future/);
    });

    test("a missing or non-numeric timestamp is refused, saying so", () => {
      const { "x-signature": signature } = signedAt(nowSeconds);
      const missing = refusedWith(
        check(verifier, { "x-signature": signature }),
        "signature_missing",
      );
      assert.match(missing, /X-Timestamp header is missing/);
      const invalid = refusedWith(
        verifier.verify(
          { rawBody, headers: { "x-signature": signature, "x-timestamp": "yesterday" } },
          NOW,
        ),
        "signature_invalid",
      );
      assert.match(invalid, /X-Timestamp header is not a Unix time/);
    });

    test("a timestamp in milliseconds is refused with a hint", () => {
      const reason = refusedWith(check(verifier, signedAt(NOW)), "signature_expired");
      assert.match(reason, /milliseconds/);
    });

    test("a spec without a timestamp header is refused when built", () => {
      const { timestampHeader: _, ...withoutHeader } = spec;
      assert.throws(() => createHmacVerifier(withoutHeader, secret), /timestampHeader/);
    });
  });

  test("the dedupe key is X-Webhook-Delivery, else webhook-id, else none", () => {
    const verifier = hmacVerifier({});
    const signature = digest("sha256", secret, rawBody, "hex");
    const keyOf = (headers: Headers) => {
      const result = verifier.verify(
        { rawBody, headers: { "x-signature": signature, ...headers } },
        NOW,
      );
      return result.ok ? result.dedupeKey : "refused";
    };
    assert.equal(keyOf({ "x-webhook-delivery": "dlv_1", "webhook-id": "msg_1" }), "dlv_1");
    assert.equal(keyOf({ "webhook-id": "msg_1" }), "msg_1");
    assert.equal(keyOf({}), undefined);
  });
});

describe("token verifier", () => {
  const secret = "tok_4f8a9c";

  test("a named header: the right token is accepted, a wrong or missing one refused", () => {
    const verifier = createTokenVerifier({ type: "token", header: "X-Api-Token" }, secret);
    assert.deepEqual(check(verifier, { "x-api-token": secret }), {
      ok: true,
      scheme: "token",
    });
    const wrong = check(verifier, { "x-api-token": "tok_other" });
    const reason = refusedWith(wrong, "signature_invalid");
    assert.match(reason, /X-Api-Token/);
    assertNoSecret(wrong, secret);
    refusedWith(check(verifier, {}), "signature_missing");
    refusedWith(check(verifier, { "x-api-token": `${secret}x` }), "signature_invalid");
  });

  test("no header named: Authorization: Bearer <token>", () => {
    const verifier = createTokenVerifier({ type: "token" }, secret);
    const ok = verifier.verify(
      { rawBody, headers: { authorization: `Bearer ${secret}`, "x-webhook-delivery": "dlv_9" } },
      NOW,
    );
    assert.deepEqual(ok, { ok: true, scheme: "token", dedupeKey: "dlv_9" });
    assert.equal(check(verifier, { authorization: `bearer ${secret}` }).ok, true);
    refusedWith(check(verifier, { authorization: "Bearer tok_other" }), "signature_invalid");
    const notBearer = refusedWith(check(verifier, { authorization: secret }), "signature_invalid");
    assert.match(notBearer, /Bearer <token>/);
    refusedWith(check(verifier, {}), "signature_missing");
  });

  test("a named Authorization header takes the whole value or its Bearer token", () => {
    const verifier = createTokenVerifier({ type: "token", header: "Authorization" }, secret);
    assert.equal(check(verifier, { authorization: secret }).ok, true);
    assert.equal(check(verifier, { authorization: `Bearer ${secret}` }).ok, true);
  });
});

describe("stripe verifier", () => {
  const secret = "whsec_stripe_test";
  const stripe = new Stripe("sk_test_x");
  const verifier = createStripeVerifier(secret);
  const header = (options: { secret?: string; timestamp?: number } = {}) =>
    stripe.webhooks.generateTestHeaderString({
      payload,
      secret: options.secret ?? secret,
      timestamp: options.timestamp ?? nowSeconds,
    });

  test("a request signed by the stripe package is accepted, deduped on the event id", () => {
    const result = verifier.verify(
      { rawBody, headers: { "stripe-signature": header() }, body: JSON.parse(payload) },
      NOW,
    );
    assert.deepEqual(result, { ok: true, scheme: "stripe-signature", dedupeKey: "evt_123" });
    const withoutBody = verifier.verify(
      { rawBody, headers: { "stripe-signature": header() } },
      NOW,
    );
    assert.deepEqual(withoutBody, { ok: true, scheme: "stripe-signature" });
  });

  test("a tampered body and a wrong secret are refused", () => {
    refusedWith(check(verifier, { "stripe-signature": header() }, tampered), "signature_invalid");
    const wrong = verifier.verify(
      { rawBody, headers: { "stripe-signature": header({ secret: "whsec_other" }) } },
      NOW,
    );
    refusedWith(wrong, "signature_invalid");
    assertNoSecret(wrong, secret, "whsec_other");
    refusedWith(check(verifier, {}), "signature_missing");
  });

  test("a 10-minute-old timestamp is refused, unless the source's tolerance allows it", () => {
    const stale = { "stripe-signature": header({ timestamp: TEN_MINUTES_AGO }) };
    refusedWith(check(verifier, stale), "signature_expired");
    assert.equal(verifier.verify({ rawBody, headers: stale }, NOW, 3600).ok, true);
    const lenient = createStripeVerifier(secret, 3600);
    assert.equal(check(lenient, stale).ok, true);
    refusedWith(lenient.verify({ rawBody, headers: stale }, NOW, 60), "signature_expired");
  });

  test("several v1 signatures are accepted when one matches (secret rolling)", () => {
    const good = header();
    const old = header({ secret: "whsec_old" }).split(",")[1];
    const rolled = `${good.split(",")[0]},${old},${good.split(",")[1]}`;
    assert.equal(check(verifier, { "stripe-signature": rolled }).ok, true);
  });
});

describe("github verifier", () => {
  const secret = "gh-webhook-secret";
  const verifier = createGithubVerifier(secret);

  test("a request signed by @octokit/webhooks-methods is accepted, deduped on X-GitHub-Delivery", async () => {
    const headers = {
      "x-hub-signature-256": await githubSign(secret, payload),
      "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
      "x-webhook-delivery": "ignored",
    };
    assert.deepEqual(verifier.verify({ rawBody, headers }, NOW), {
      ok: true,
      scheme: "x-hub-signature-256",
      dedupeKey: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    });
  });

  test("a tampered body, a wrong secret, a missing prefix and a missing header are refused", async () => {
    const signature = await githubSign(secret, payload);
    refusedWith(
      check(verifier, { "x-hub-signature-256": signature }, tampered),
      "signature_invalid",
    );
    const wrong = verifier.verify(
      { rawBody, headers: { "x-hub-signature-256": await githubSign("other", payload) } },
      NOW,
    );
    refusedWith(wrong, "signature_invalid");
    assertNoSecret(wrong, secret);
    const bare = signature.replace("sha256=", "");
    refusedWith(check(verifier, { "x-hub-signature-256": bare }), "signature_invalid");
    const missing = refusedWith(check(verifier, {}), "signature_missing");
    assert.match(missing, /X-Hub-Signature-256/);
  });
});

describe("standard webhooks verifier", () => {
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  const sender = new Webhook(secret);
  const verifier = createStandardWebhooksVerifier(secret);
  const headersAt = (seconds: number, id = "msg_2Lh9KsZ", signer = sender): Headers => ({
    "webhook-id": id,
    "webhook-timestamp": String(seconds),
    "webhook-signature": signer.sign(id, new Date(seconds * 1000), payload),
  });

  test("a request signed by the standardwebhooks package is accepted, deduped on webhook-id", () => {
    assert.deepEqual(check(verifier, headersAt(nowSeconds)), {
      ok: true,
      scheme: "standard-webhooks",
      dedupeKey: "msg_2Lh9KsZ",
    });
  });

  test("a tampered body, a wrong secret and a changed webhook-id are refused", () => {
    refusedWith(check(verifier, headersAt(nowSeconds), tampered), "signature_invalid");
    const other = new Webhook(`whsec_${randomBytes(24).toString("base64")}`);
    const wrong = check(verifier, headersAt(nowSeconds, "msg_1", other));
    refusedWith(wrong, "signature_invalid");
    assertNoSecret(wrong, secret, secret.slice(6));
    const moved = { ...headersAt(nowSeconds), "webhook-id": "msg_other" };
    refusedWith(check(verifier, moved), "signature_invalid");
  });

  test("a 10-minute-old timestamp is refused, unless the source's tolerance allows it", () => {
    const headers = headersAt(TEN_MINUTES_AGO);
    refusedWith(verifier.verify({ rawBody, headers }, NOW), "signature_expired");
    assert.equal(verifier.verify({ rawBody, headers }, NOW, 3600).ok, true);
  });

  test("any matching v1 entry is accepted; other versions are ignored", () => {
    const headers = headersAt(nowSeconds);
    const good = String(headers["webhook-signature"]);
    const old = new Webhook(`whsec_${randomBytes(24).toString("base64")}`).sign(
      "msg_2Lh9KsZ",
      new Date(NOW),
      payload,
    );
    const rotated = { ...headers, "webhook-signature": `v1a,c29tZXRoaW5n ${old} ${good}` };
    assert.equal(check(verifier, rotated).ok, true);
    const onlyOther = { ...headers, "webhook-signature": good.replace("v1,", "v2,") };
    refusedWith(check(verifier, onlyOther), "signature_invalid");
  });

  test("missing headers are named", () => {
    const { "webhook-timestamp": _, ...withoutTimestamp } = headersAt(nowSeconds);
    const reason = refusedWith(check(verifier, withoutTimestamp), "signature_missing");
    assert.match(reason, /webhook-timestamp header is missing/);
    const none = refusedWith(check(verifier, {}), "signature_missing");
    assert.match(none, /webhook-id, webhook-timestamp and webhook-signature headers are missing/);
    refusedWith(
      verifier.verify(
        { rawBody, headers: { ...headersAt(nowSeconds), "webhook-timestamp": "soon" } },
        NOW,
      ),
      "signature_invalid",
    );
  });

  test("the key is the base64 secret without whsec_, or the text of a secret that is not base64", () => {
    const bytes = randomBytes(32);
    assert.deepEqual(standardWebhooksKey(`whsec_${bytes.toString("base64")}`), bytes);
    assert.deepEqual(standardWebhooksKey(bytes.toString("base64")), bytes);
    assert.deepEqual(standardWebhooksKey("not base64!"), Buffer.from("not base64!"));
    assert.deepEqual(standardWebhooksKey("whsec_plain-text"), Buffer.from("whsec_plain-text"));
    const plain = "not base64!";
    const raw = new Webhook(Buffer.from(plain).toString("base64"));
    const headers = headersAt(nowSeconds, "msg_3", raw);
    assert.equal(createStandardWebhooksVerifier(plain).verify({ rawBody, headers }, NOW).ok, true);
  });
});

describe("xano verifier", () => {
  const secret = "xano-secret";

  test("sha256 by default, with or without the sha256= prefix", () => {
    const verifier = createXanoVerifier({ type: "xano" }, secret);
    const signature = digest("sha256", secret, rawBody, "hex");
    assert.deepEqual(
      verifier.verify(
        { rawBody, headers: { "x-webhook-signature": signature, "x-webhook-delivery": "d1" } },
        NOW,
      ),
      { ok: true, scheme: "x-webhook-signature", dedupeKey: "d1" },
    );
    assert.equal(check(verifier, { "x-webhook-signature": `sha256=${signature}` }).ok, true);
    refusedWith(
      check(verifier, { "x-webhook-signature": signature }, tampered),
      "signature_invalid",
    );
    refusedWith(
      verifier.verify(
        { rawBody, headers: { "x-webhook-signature": digest("sha256", "other", rawBody, "hex") } },
        NOW,
      ),
      "signature_invalid",
    );
    refusedWith(check(verifier, {}), "signature_missing");
  });

  test("sha384 and sha512 when configured; a signature labelled with another algorithm is named", () => {
    for (const algorithm of ["sha384", "sha512"] as const) {
      const verifier = createXanoVerifier({ type: "xano", algorithm }, secret);
      const signature = digest(algorithm, secret, rawBody, "hex");
      assert.equal(check(verifier, { "x-webhook-signature": signature }).ok, true);
      const prefixed = { "x-webhook-signature": `${algorithm}=${signature}` };
      assert.equal(check(verifier, prefixed).ok, true);
    }
    const verifier = createXanoVerifier({ type: "xano", algorithm: "sha512" }, secret);
    const sha256 = `sha256=${digest("sha256", secret, rawBody, "hex")}`;
    const reason = refusedWith(
      check(verifier, { "x-webhook-signature": sha256 }),
      "signature_invalid",
    );
    assert.match(reason, /"sha256=".*HMAC-SHA512/);
  });

  test("rotation: one matching signature among several is enough", () => {
    const verifier = createXanoVerifier({ type: "xano" }, secret);
    const good = digest("sha256", secret, rawBody, "hex");
    const old = digest("sha256", "old", rawBody, "hex");
    assert.equal(check(verifier, { "x-webhook-signature": `${old}, ${good}` }).ok, true);
  });
});

describe("none verifier", () => {
  test("accepts everything with scheme none", () => {
    assert.deepEqual(createNoneVerifier().verify({ rawBody, headers: {} }, NOW), {
      ok: true,
      scheme: "none",
    });
  });
});

describe("createVerifier and describeVerifier", () => {
  test("a missing secret throws a clear error; none needs no secret", () => {
    assert.throws(
      () => createVerifier({ type: "github" }, undefined),
      /The GitHub verifier needs a secret, and none is set\. Set this source's secret/,
    );
    assert.throws(() => createVerifier({ type: "token" }, ""), /needs a secret/);
    assert.equal(
      createVerifier({ type: "none" }, undefined).verify({ rawBody, headers: {} }, NOW).ok,
      true,
    );
  });

  test("each type builds its scheme's verifier", async () => {
    const secret = "shared";
    const github = createVerifier({ type: "github" }, secret);
    const signed = { "x-hub-signature-256": await githubSign(secret, payload) };
    assert.equal(check(github, signed).ok, true);
    const xano = createVerifier({ type: "xano", algorithm: "sha384" }, secret);
    const xanoSigned = { "x-webhook-signature": digest("sha384", secret, rawBody, "hex") };
    assert.equal(check(xano, xanoSigned).ok, true);
    const token = createVerifier({ type: "token" }, secret);
    assert.equal(check(token, { authorization: "Bearer shared" }).ok, true);
    const stripe = createVerifier({ type: "stripe" }, secret);
    refusedWith(check(stripe, {}), "signature_missing");
    const standard = createVerifier({ type: "standard-webhooks" }, secret);
    refusedWith(check(standard, {}), "signature_missing");
  });

  test("descriptions are one line each", () => {
    assert.equal(
      describeVerifier({
        type: "hmac",
        algorithm: "sha512",
        encoding: "base64",
        header: "x-signature",
        signedContent: "timestamp.body",
        timestampHeader: "x-timestamp",
      }),
      "HMAC-SHA512 (base64) of timestamp.body in X-Signature, timestamp in X-Timestamp",
    );
    assert.equal(
      describeVerifier({
        type: "hmac",
        algorithm: "sha256",
        encoding: "hex",
        header: "x-signature",
        prefix: "sha256=",
        signedContent: "body",
      }),
      'HMAC-SHA256 (hex) of body in X-Signature after "sha256="',
    );
    assert.equal(describeVerifier({ type: "token" }), "Bearer token in Authorization");
    assert.equal(
      describeVerifier({ type: "token", header: "x-api-key" }),
      "Static token in X-Api-Key",
    );
    assert.equal(
      describeVerifier({ type: "xano" }),
      "Xano: HMAC-SHA256 (hex) of body in X-Webhook-Signature",
    );
    for (const type of ["stripe", "github", "standard-webhooks", "none"] as const) {
      const line = describeVerifier({ type });
      assert.ok(line.length > 0 && !line.includes("\n"), type);
    }
  });
});

describe("replay window edges", () => {
  // Most of a second into the current second: the age is counted in whole seconds.
  const now = NOW + 900;
  const hmacSecret = "edge-secret";
  const stripeSecret = "whsec_edge";
  const stdSecret = `whsec_${randomBytes(24).toString("base64")}`;
  const timestamped: Array<[string, Verifier, (seconds: number) => Headers, string]> = [
    [
      "stripe",
      createStripeVerifier(stripeSecret),
      (seconds) => ({
        "stripe-signature": new Stripe("sk_test_x").webhooks.generateTestHeaderString({
          payload,
          secret: stripeSecret,
          timestamp: seconds,
        }),
      }),
      "The timestamp in Stripe-Signature",
    ],
    [
      "standard-webhooks",
      createStandardWebhooksVerifier(stdSecret),
      (seconds) => ({
        "webhook-id": "msg_edge",
        "webhook-timestamp": String(seconds),
        "webhook-signature": new Webhook(stdSecret).sign(
          "msg_edge",
          new Date(seconds * 1000),
          payload,
        ),
      }),
      "The timestamp in webhook-timestamp",
    ],
    [
      "hmac with a timestamp header",
      hmacVerifier({ signedContent: "timestamp.body", timestampHeader: "x-timestamp" }, hmacSecret),
      (seconds) => ({
        "x-signature": digest("sha256", hmacSecret, `${seconds}.${payload}`, "hex"),
        "x-timestamp": String(seconds),
      }),
      "The timestamp in X-Timestamp",
    ],
  ];
  for (const [name, verifier, signedAt, opening] of timestamped) {
    test(`${name}: a timestamp exactly the tolerance old or ahead is accepted; a second more is refused with its age`, () => {
      const at = (seconds: number) => verifier.verify({ rawBody, headers: signedAt(seconds) }, now);
      assert.equal(at(nowSeconds - 300).ok, true);
      assert.equal(at(nowSeconds + 300).ok, true);
      const old = refusedWith(at(nowSeconds - 301), "signature_expired");
      assert.ok(
        old.startsWith(
          `${opening} is 301 seconds old, outside this source's tolerance of 300 seconds,`,
        ),
        old,
      );
      const ahead = refusedWith(at(nowSeconds + 301), "signature_expired");
      assert.ok(ahead.startsWith(`${opening} is 301 seconds in the future,`), ahead);
      const tight = refusedWith(
        verifier.verify({ rawBody, headers: signedAt(nowSeconds - 2) }, now, 1),
        "signature_expired",
      );
      assert.match(tight, /is 2 seconds old, outside this source's tolerance of 1 second,/);
      assert.equal(
        verifier.verify({ rawBody, headers: signedAt(nowSeconds - 1) }, now, 1).ok,
        true,
      );
    });
  }
});
