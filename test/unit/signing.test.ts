import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { createStandardWebhooksVerifier } from "../../src/adapters/verifiers/standard-webhooks.js";
import { createXanoVerifier } from "../../src/adapters/verifiers/xano.js";
import { constantTimeEqual, signDelivery, signHex } from "../../src/domain/signing.js";

const secret = "optional-custom-secret";
const body = JSON.stringify({
  event: "user.created",
  timestamp: "2025-12-05T07:00:00.000Z",
  data: { userId: "123" },
});

/** The verification snippet of the API contract, word for word in behaviour. */
function verifyWebhook(payload: string, signature: string, key: string): boolean {
  const expectedSignature = createHmac("sha256", key).update(payload).digest("hex");
  return timingSafeEqual(Buffer.from(signature), Buffer.from(expectedSignature));
}

describe("signing", () => {
  test("X-Webhook-Signature passes the API contract's verification snippet", () => {
    const headers = signDelivery(secret, "del_1_abc", body, Date.parse("2025-12-05T07:00:00Z"));
    assert.equal(verifyWebhook(body, headers["x-webhook-signature"], secret), true);
    assert.equal(verifyWebhook(`${body} `, headers["x-webhook-signature"], secret), false);
  });

  test("hex signatures are keyed by the secret's bytes and cover every body byte", () => {
    assert.equal(signHex("k", "a"), createHmac("sha256", "k").update("a").digest("hex"));
    assert.notEqual(signHex("k", "a"), signHex("k", "b"));
    assert.notEqual(signHex("k", "a"), signHex("l", "a"));
  });

  test("the Standard Webhooks headers verify with the standardwebhooks library", () => {
    const now = Date.now();
    const headers = signDelivery(secret, "del_1_abc", body, now);
    assert.equal(headers["webhook-id"], "del_1_abc");
    assert.equal(headers["webhook-timestamp"], String(Math.floor(now / 1000)));
    assert.match(headers["webhook-signature"], /^v1,[A-Za-z0-9+/]+=*$/);
    const verifier = new Webhook(Buffer.from(secret, "utf8").toString("base64"));
    assert.deepEqual(verifier.verify(body, headers), JSON.parse(body));
    assert.throws(() => verifier.verify(body.replace("123", "124"), headers));
    assert.throws(() =>
      new Webhook(Buffer.from("other-secret").toString("base64")).verify(body, headers),
    );
  });

  test("constantTimeEqual compares whole values, whatever their lengths", () => {
    assert.equal(constantTimeEqual("abc", "abc"), true);
    assert.equal(constantTimeEqual("abc", "abd"), false);
    assert.equal(constantTimeEqual("abc", "abcd"), false);
    assert.equal(constantTimeEqual("", ""), true);
  });
});

test("Herald's own deliveries pass its Standard Webhooks and Xano verifiers with the same secret", () => {
  const hexSecret = "ab".repeat(32);
  const headers = signDelivery(hexSecret, "del_9_x", body, Date.now());
  const request = { rawBody: Buffer.from(body), headers: { ...headers } };
  assert.equal(createStandardWebhooksVerifier(hexSecret).verify(request, Date.now()).ok, true);
  assert.equal(
    createXanoVerifier({ type: "xano" }, hexSecret).verify(request, Date.now()).ok,
    true,
  );
  assert.equal(
    createStandardWebhooksVerifier("cd".repeat(32)).verify(request, Date.now()).ok,
    false,
  );
});

test("a secret in Standard Webhooks form (whsec_ and base64) signs as the standard's libraries read it", () => {
  const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const headers = signDelivery(whsec, "del_7_w", body, Date.now());
  // The library takes the secret as it stands; the hex signature keeps the seed's key, the text.
  assert.deepEqual(new Webhook(whsec).verify(body, headers), JSON.parse(body));
  assert.equal(
    headers["x-webhook-signature"],
    createHmac("sha256", whsec).update(body).digest("hex"),
  );
  // Herald's own Standard Webhooks source with the same secret takes it.
  const request = { rawBody: Buffer.from(body), headers: { ...headers } };
  assert.equal(createStandardWebhooksVerifier(whsec).verify(request, Date.now()).ok, true);
  // whsec_ followed by something that is not base64 is a plain-text key, like any other secret.
  const odd = "whsec_not base64!";
  const plain = signDelivery(odd, "del_7_w", body, Date.now());
  const verifier = new Webhook(Buffer.from(odd, "utf8").toString("base64"));
  assert.deepEqual(verifier.verify(body, plain), JSON.parse(body));
});
