import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import Stripe from "stripe";
import { createFirstPresentVerifier } from "../../src/adapters/verifiers/first-present.js";
import { createStripeVerifier } from "../../src/adapters/verifiers/stripe.js";
import { createXanoVerifier } from "../../src/adapters/verifiers/xano.js";
import {
  incomingDedupeKey,
  incomingEventName,
  storableHeaders,
} from "../../src/domain/incoming.js";

const rawBody = Buffer.from('{"event":"record.created","data":{"id":"123","table":"users"}}');
const hex = (key: string, data: Buffer | string) =>
  createHmac("sha256", key).update(data).digest("hex");

describe("X-Webhook-Signature verifier", () => {
  const verifier = createXanoVerifier({ type: "xano" }, "xano-secret");

  test("accepts the hex HMAC-SHA256 of the raw body, with or without a sha256= prefix", () => {
    const signature = hex("xano-secret", rawBody);
    assert.deepEqual(
      verifier.verify({ rawBody, headers: { "x-webhook-signature": signature } }, 0),
      {
        ok: true,
        scheme: "x-webhook-signature",
      },
    );
    const prefixed = { "x-webhook-signature": `sha256=${signature.toUpperCase()}` };
    assert.equal(verifier.verify({ rawBody, headers: prefixed }, 0).ok, true);
  });

  test("refuses a missing header, a wrong secret and a changed body, saying which", () => {
    const missing = verifier.verify({ rawBody, headers: {} }, 0);
    assert.equal(missing.ok === false && missing.code, "signature_missing");
    const wrongKey = verifier.verify(
      { rawBody, headers: { "x-webhook-signature": hex("other", rawBody) } },
      0,
    );
    assert.equal(wrongKey.ok === false && wrongKey.code, "signature_invalid");
    const changed = Buffer.concat([rawBody, Buffer.from(" ")]);
    const tampered = verifier.verify(
      { rawBody: changed, headers: { "x-webhook-signature": hex("xano-secret", rawBody) } },
      0,
    );
    assert.equal(tampered.ok, false);
  });
});

describe("Stripe-Signature verifier", () => {
  const secret = "whsec_test_secret";
  const stripe = new Stripe("sk_test_123");
  const payload = '{"id":"evt_1","type":"payment_intent.succeeded"}';
  const verifier = createStripeVerifier(secret);

  test("accepts a header made by the stripe package's test helper", () => {
    const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
    const result = verifier.verify(
      { rawBody: Buffer.from(payload), headers: { "stripe-signature": header } },
      Date.now(),
    );
    assert.deepEqual(result, { ok: true, scheme: "stripe-signature" });
  });

  test("accepts when any of several v1 signatures matches", () => {
    const t = 1_700_000_000;
    const good = hex(secret, `${t}.${payload}`);
    const header = `t=${t},v1=${"0".repeat(64)},v1=${good}`;
    const result = verifier.verify(
      { rawBody: Buffer.from(payload), headers: { "stripe-signature": header } },
      t * 1000,
    );
    assert.equal(result.ok, true);
  });

  test("refuses a tampered body, a wrong secret and a stale timestamp", () => {
    const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
    const tampered = verifier.verify(
      {
        rawBody: Buffer.from(payload.replace("evt_1", "evt_2")),
        headers: { "stripe-signature": header },
      },
      Date.now(),
    );
    assert.equal(tampered.ok === false && tampered.code, "signature_invalid");

    const wrongSecret = stripe.webhooks.generateTestHeaderString({
      payload,
      secret: "whsec_other",
    });
    assert.equal(
      verifier.verify(
        { rawBody: Buffer.from(payload), headers: { "stripe-signature": wrongSecret } },
        Date.now(),
      ).ok,
      false,
    );

    const tenMinutesAgo = Math.floor(Date.now() / 1000) - 600;
    const stale = stripe.webhooks.generateTestHeaderString({
      payload,
      secret,
      timestamp: tenMinutesAgo,
    });
    const result = verifier.verify(
      { rawBody: Buffer.from(payload), headers: { "stripe-signature": stale } },
      Date.now(),
    );
    assert.equal(result.ok === false && result.code, "signature_expired");
  });

  test("refuses a header without t= or v1=", () => {
    for (const header of ["v1=abc", "t=123", "garbage"]) {
      const result = verifier.verify(
        { rawBody: Buffer.from(payload), headers: { "stripe-signature": header } },
        0,
      );
      assert.equal(result.ok === false && result.code, "signature_invalid", header);
    }
  });
});

describe("choosing a scheme by header", () => {
  const verifier = createFirstPresentVerifier([
    ["stripe-signature", createStripeVerifier("whsec_x")],
    ["x-webhook-signature", createXanoVerifier({ type: "xano" }, "whsec_x")],
  ]);

  test("uses the scheme whose header is present", () => {
    const headers = { "x-webhook-signature": hex("whsec_x", rawBody) };
    assert.deepEqual(verifier.verify({ rawBody, headers }, 0), {
      ok: true,
      scheme: "x-webhook-signature",
    });
  });

  test("names every accepted header when none is sent", () => {
    const result = verifier.verify({ rawBody, headers: {} }, 0);
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.reason, /Stripe-Signature or X-Webhook-Signature/);
  });
});

describe("incoming metadata", () => {
  test("the event name comes from X-Webhook-Event, else the body's event, else its type", () => {
    assert.equal(incomingEventName({ "x-webhook-event": "a.b" }, { event: "c" }), "a.b");
    assert.equal(incomingEventName({}, { event: "c", type: "d" }), "c");
    assert.equal(incomingEventName({}, { type: "d" }), "d");
    assert.equal(incomingEventName({}, [1, 2]), null);
  });

  test("the dedupe key is X-Webhook-Delivery, else webhook-id, else a Stripe event id", () => {
    assert.equal(
      incomingDedupeKey("xano", { "x-webhook-delivery": "d1", "webhook-id": "m1" }, {}),
      "d1",
    );
    assert.equal(incomingDedupeKey("custom", { "webhook-id": "m1" }, {}), "m1");
    assert.equal(incomingDedupeKey("stripe", {}, { id: "evt_9" }), "evt_9");
    assert.equal(incomingDedupeKey("custom", {}, { id: "evt_9" }), null);
  });

  test("stored headers leave credentials out", () => {
    const kept = storableHeaders({
      authorization: "Bearer x",
      cookie: "a=b",
      "x-api-key": "k",
      "x-webhook-signature": "abc",
      accept: ["a", "b"],
    });
    assert.deepEqual(kept, { "x-webhook-signature": "abc", accept: "a, b" });
  });
});
