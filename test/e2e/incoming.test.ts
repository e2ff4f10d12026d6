/** End-to-end: incoming webhooks posted to a real Herald over HTTP. */

import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { type TestContext, test } from "node:test";
import Stripe from "stripe";
import { type RunningHerald, startHerald } from "../support/herald.js";

const SECRETS = {
  xano: "xano-shared-secret-0123456789",
  stripe: "whsec_test_0123456789abcdef",
  custom: "custom-shared-secret-abcdef",
};

const stripe = new Stripe("sk_test_x");

const ALL_SECRETS = {
  HERALD_INCOMING_SECRET_XANO: SECRETS.xano,
  HERALD_INCOMING_SECRET_STRIPE: SECRETS.stripe,
  HERALD_INCOMING_SECRET_CUSTOM: SECRETS.custom,
};

/** Starts a Herald for one test and stops it when the test ends. */
async function startFor(t: TestContext, env: Record<string, string> = ALL_SECRETS) {
  const herald = await startHerald(env);
  t.after(() => herald.stop());
  return herald;
}

const hexSignature = (secret: string, body: string) =>
  createHmac("sha256", secret).update(body).digest("hex");

/** Posts `body` as-is to an incoming route of `target`. */
async function post(
  target: RunningHerald,
  service: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${target.url}/api/incoming-webhooks/${service}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

function assertErrorBody(body: any) {
  assert.equal(body.success, false);
  assert.equal(typeof body.error, "string");
  assert.ok(body.error.length > 0);
  assert.equal(typeof body.message, "string");
  assert.ok(body.message.length > 0);
}

function assertAccepted(answer: { status: number; body: any }) {
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.success, true);
  assert.equal(answer.body.message, "Webhook received successfully");
  assert.match(answer.body.eventId, /^evt_/);
}

const recordBody = () =>
  JSON.stringify({
    event: "record.created",
    data: { id: randomUUID(), table: "users", record: { name: "John Doe" } },
  });

test("the incoming health route answers without credentials", async (t) => {
  const herald = await startFor(t);
  const response = await fetch(`${herald.url}/api/incoming-webhooks/health`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as any;
  assert.equal(body.success, true);
  assert.equal(body.message, "Incoming webhook endpoint is healthy");
  assert.ok(!Number.isNaN(Date.parse(body.timestamp)));
});

for (const service of ["xano", "custom"] as const) {
  test(`a ${service} webhook with a valid X-Webhook-Signature is accepted`, async (t) => {
    const herald = await startFor(t);
    const body = recordBody();
    const answer = await post(herald, service, body, {
      "x-webhook-signature": hexSignature(SECRETS[service], body),
      "x-webhook-event": "record.created",
    });
    assertAccepted(answer);
    assert.equal(answer.body.duplicate, false);
  });
}

test("without a delivery id, a repeated body is a duplicate; another body, or the same body under another event name, is not", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const other = recordBody();
  const headers = { "x-webhook-signature": hexSignature(SECRETS.xano, body) };
  const first = await post(herald, "xano", body, headers);
  const second = await post(herald, "xano", body, headers);
  const third = await post(herald, "xano", other, {
    "x-webhook-signature": hexSignature(SECRETS.xano, other),
  });
  const renamed = await post(herald, "xano", body, { ...headers, "x-webhook-event": "user.login" });
  assertAccepted(first);
  assertAccepted(second);
  assertAccepted(third);
  assertAccepted(renamed);
  assert.equal(second.body.eventId, first.body.eventId);
  assert.equal(second.body.duplicate, true);
  assert.notEqual(third.body.eventId, first.body.eventId);
  assert.equal(third.body.duplicate, false);
  assert.notEqual(renamed.body.eventId, first.body.eventId);
  assert.equal(renamed.body.duplicate, false);
});

test("a signed JSON body that starts with a byte order mark is accepted, verified on the bytes sent", async (t) => {
  const herald = await startFor(t);
  const body = `\uFEFF${recordBody()}`;
  const answer = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
  });
  assertAccepted(answer);
  const stored = await herald.api("GET", `/api/incoming-events/${answer.body.eventId}`);
  assert.equal(stored.body.event.body, body);
  assert.equal(stored.body.event.event, "record.created");
});

test("blank headers count as absent: the body names the event, and a blank Stripe-Signature leaves X-Webhook-Signature to check", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const named = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
    "x-webhook-event": " ",
    "x-webhook-delivery": "",
  });
  assertAccepted(named);
  const stored = await herald.api("GET", `/api/incoming-events/${named.body.eventId}`);
  assert.equal(stored.body.event.event, "record.created");
  assert.match(stored.body.event.dedupeKey, /^sha256:/);

  const viaContract = await post(herald, "stripe", body, {
    "stripe-signature": "",
    "x-webhook-signature": hexSignature(SECRETS.stripe, body),
  });
  assertAccepted(viaContract);
});

test("a webhook signed with the wrong secret is refused with 401", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const answer = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature("not-the-secret", body),
  });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
  assert.equal(answer.body.code, "signature_invalid");
});

test("a signature made with another service's secret is refused with 401", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const answer = await post(herald, "custom", body, {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
  });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
});

test("a webhook whose body changed after signing is refused with 401", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const answer = await post(herald, "custom", body.replace("John", "Jane"), {
    "x-webhook-signature": hexSignature(SECRETS.custom, body),
  });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
});

test("a webhook without a signature is refused with 401", async (t) => {
  const herald = await startFor(t);
  const answer = await post(herald, "custom", recordBody());
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
  assert.equal(answer.body.code, "signature_missing");
  assert.match(answer.body.message, /X-Webhook-Signature/);
});

test("a webhook for an unknown service is refused with 404 that names no other source", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const answer = await post(herald, "github", body, {
    "x-webhook-signature": hexSignature(SECRETS.custom, body),
  });
  assert.equal(answer.status, 404);
  assertErrorBody(answer.body);
  assert.equal(answer.body.code, "unknown_service");
  // The caller has shown no key: the sources that exist are not its business.
  for (const source of ["xano", "stripe", "custom"]) {
    assert.doesNotMatch(answer.body.message, new RegExp(`incoming-webhooks/${source}\\b`));
  }
  assert.match(answer.body.message, /GET \/api\/sources/);
});

test("a signed body that is not valid JSON is refused with 400, an unsigned one with 401", async (t) => {
  const herald = await startFor(t);
  const body = '{"event": "record.created", "data": ';
  const answer = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
  });
  assert.equal(answer.status, 400);
  assertErrorBody(answer.body);
  assert.equal(answer.body.code, "malformed_json");

  // Unsigned or wrongly signed, the same body is refused for its signature: its content is never
  // read for a sender that has not proved who it is.
  const unsigned = await post(herald, "xano", body);
  assert.equal(unsigned.status, 401, JSON.stringify(unsigned.body));
  assertErrorBody(unsigned.body);
  const forged = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature("not-the-secret", body),
  });
  assert.equal(forged.status, 401, JSON.stringify(forged.body));
});

test("a body of a type Herald cannot read is refused with 415", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const answer = await post(herald, "xano", body, {
    "content-type": "application/octet-stream",
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
  });
  assert.equal(answer.status, 415);
  assertErrorBody(answer.body);
});

test("a Stripe webhook signed by the stripe library is accepted", async (t) => {
  const herald = await startFor(t);
  const payload = JSON.stringify({ id: `evt_${randomUUID()}`, type: "customer.created" });
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret: SECRETS.stripe });
  const answer = await post(herald, "stripe", payload, { "stripe-signature": header });
  assertAccepted(answer);
  assert.equal(answer.body.duplicate, false);
});

test("a Stripe webhook whose payload changed after signing is refused with 401", async (t) => {
  const herald = await startFor(t);
  const payload = JSON.stringify({ id: `evt_${randomUUID()}`, type: "customer.created" });
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret: SECRETS.stripe });
  const tampered = payload.replace("customer.created", "customer.deleted");
  const answer = await post(herald, "stripe", tampered, { "stripe-signature": header });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
  assert.equal(answer.body.code, "signature_invalid");
});

test("a Stripe webhook signed ten minutes ago is refused with 401", async (t) => {
  const herald = await startFor(t);
  const payload = JSON.stringify({ id: `evt_${randomUUID()}`, type: "customer.created" });
  const header = stripe.webhooks.generateTestHeaderString({
    payload,
    secret: SECRETS.stripe,
    timestamp: Math.floor(Date.now() / 1000) - 600,
  });
  const answer = await post(herald, "stripe", payload, { "stripe-signature": header });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
  assert.equal(answer.body.code, "signature_expired");
});

test("a Stripe webhook signed with another endpoint's secret is refused with 401", async (t) => {
  const herald = await startFor(t);
  const payload = JSON.stringify({ id: `evt_${randomUUID()}`, type: "customer.created" });
  const header = stripe.webhooks.generateTestHeaderString({
    payload,
    secret: "whsec_some_other_endpoint",
  });
  const answer = await post(herald, "stripe", payload, { "stripe-signature": header });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
});

test("the same X-Webhook-Delivery posted twice is stored once and answered with the same event id", async (t) => {
  const herald = await startFor(t);
  const body = recordBody();
  const headers = {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
    "x-webhook-delivery": `del_${randomUUID()}`,
  };
  const first = await post(herald, "xano", body, headers);
  const second = await post(herald, "xano", body, headers);
  assertAccepted(first);
  assertAccepted(second);
  assert.equal(first.body.duplicate, false);
  assert.equal(second.body.duplicate, true);
  assert.equal(second.body.eventId, first.body.eventId);
});

test("the same delivery id sent to two services is stored once per service", async (t) => {
  const herald = await startFor(t);
  const deliveryId = `del_${randomUUID()}`;
  const body = recordBody();
  const xano = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
    "x-webhook-delivery": deliveryId,
  });
  const custom = await post(herald, "custom", body, {
    "x-webhook-signature": hexSignature(SECRETS.custom, body),
    "x-webhook-delivery": deliveryId,
  });
  assertAccepted(xano);
  assertAccepted(custom);
  assert.equal(custom.body.duplicate, false);
  assert.notEqual(custom.body.eventId, xano.body.eventId);
});

test("two Stripe webhooks with the same event id are stored once", async (t) => {
  const herald = await startFor(t);
  const payload = JSON.stringify({ id: `evt_${randomUUID()}`, type: "invoice.paid" });
  const first = await post(herald, "stripe", payload, {
    "stripe-signature": stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRETS.stripe,
    }),
  });
  const second = await post(herald, "stripe", payload, {
    "stripe-signature": stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRETS.stripe,
      timestamp: Math.floor(Date.now() / 1000) - 5,
    }),
  });
  assertAccepted(first);
  assertAccepted(second);
  assert.equal(first.body.duplicate, false);
  assert.equal(second.body.duplicate, true);
  assert.equal(second.body.eventId, first.body.eventId);
});

test("a Stripe event is known by its id whichever way it is signed: a new X-Webhook-Delivery does not make a copy new", async (t) => {
  const herald = await startFor(t);
  const payload = JSON.stringify({ id: `evt_${randomUUID()}`, type: "invoice.paid" });
  const first = await post(herald, "stripe", payload, {
    "stripe-signature": stripe.webhooks.generateTestHeaderString({
      payload,
      secret: SECRETS.stripe,
    }),
  });
  const copies = await Promise.all(
    ["d1", "d2"].map((deliveryId) =>
      post(herald, "stripe", payload, {
        "x-webhook-signature": hexSignature(SECRETS.stripe, payload),
        "x-webhook-delivery": `${deliveryId}-${randomUUID()}`,
      }),
    ),
  );
  assertAccepted(first);
  assert.equal(first.body.duplicate, false);
  for (const copy of copies) {
    assertAccepted(copy);
    assert.equal(copy.body.duplicate, true);
    assert.equal(copy.body.eventId, first.body.eventId);
  }
  // Without an id in the body, the delivery header still tells copies apart.
  const idless = JSON.stringify({ type: "invoice.paid", n: randomUUID() });
  const answers = [];
  for (const deliveryId of ["a", "b", "a"]) {
    answers.push(
      await post(herald, "stripe", idless, {
        "x-webhook-signature": hexSignature(SECRETS.stripe, idless),
        "x-webhook-delivery": `${deliveryId}-${first.body.eventId}`,
      }),
    );
  }
  assert.deepEqual(
    answers.map((answer) => answer.body.duplicate),
    [false, false, true],
  );
});

test("a signed request with no body at all is refused for its empty body, not for its missing Content-Type", async (t) => {
  const herald = await startFor(t);
  const extras: Array<Record<string, string>> = [
    {},
    { "content-encoding": "gzip", "content-type": "application/json" },
  ];
  for (const headers of extras) {
    const response = await fetch(`${herald.url}/api/incoming-webhooks/xano`, {
      method: "POST",
      headers: { "x-webhook-signature": hexSignature(SECRETS.xano, ""), ...headers },
    });
    const body = (await response.json()) as { message: string };
    assert.equal(response.status, 400, JSON.stringify(body));
    assertErrorBody(body);
    assert.match(body.message, /body is empty/);
  }
  // Unsigned, it is refused for the signature first, as any request is.
  const unsigned = await fetch(`${herald.url}/api/incoming-webhooks/xano`, { method: "POST" });
  assert.equal(unsigned.status, 401);
});

test("a service without a configured secret refuses webhooks and names the missing setting", async (t) => {
  const herald = await startFor(t, {
    HERALD_INCOMING_SECRET_XANO: SECRETS.xano,
    HERALD_INCOMING_SECRET_STRIPE: SECRETS.stripe,
  });
  const body = recordBody();
  const answer = await post(herald, "custom", body, {
    "x-webhook-signature": hexSignature(SECRETS.custom, body),
  });
  assert.equal(answer.status, 401);
  assertErrorBody(answer.body);
  assert.match(answer.body.message, /HERALD_INCOMING_SECRET_CUSTOM/);

  const xano = await post(herald, "xano", body, {
    "x-webhook-signature": hexSignature(SECRETS.xano, body),
  });
  assertAccepted(xano);
});
