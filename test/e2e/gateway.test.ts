/** End-to-end: the incoming gateway (sources, verifiers, bodies, dedupe, routing, replay) over HTTP. */

import assert from "node:assert/strict";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { type TestContext, test } from "node:test";
import { gzipSync } from "node:zlib";
import { sign as githubSign } from "@octokit/webhooks-methods";
import { Webhook } from "standardwebhooks";
import Stripe from "stripe";
import { type RunningHerald, startHerald, TEST_API_KEY, waitFor } from "../support/herald.js";
import { type Receiver, withReceiver } from "../support/receiver.js";
import { tempSqliteStore } from "../support/store.js";

const XANO_SECRET = "xano-gateway-secret-0123456789";
const ENV = {
  HERALD_INCOMING_SECRET_XANO: XANO_SECRET,
  HERALD_INCOMING_SECRET_STRIPE: "whsec_builtin_stripe_0123456789",
  HERALD_INCOMING_SECRET_CUSTOM: "custom-gateway-secret-abcdef",
};

const stripe = new Stripe("sk_test_x");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
type Headers = Record<string, string>;
type Answer = { status: number; body: any; headers: globalThis.Headers };

const digest = (algorithm: string, secret: string, content: string, encoding: "hex" | "base64") =>
  createHmac(algorithm, secret).update(content).digest(encoding);

/** Starts Herald (and a receiver) for one test and stops both when it ends. */
async function setup(t: TestContext): Promise<{ herald: RunningHerald; receiver: Receiver }> {
  return withReceiver(t, () => startHerald(ENV));
}

/** Posts `body` as-is to `/api/incoming-webhooks/<source>`; `chunked` sends no Content-Length. */
async function post(
  herald: RunningHerald,
  source: string,
  body: string,
  headers: Headers = {},
  contentType = "application/json",
  chunked = false,
): Promise<Answer> {
  const stream = new Blob([body]).stream();
  const response = await fetch(`${herald.url}/api/incoming-webhooks/${source}`, {
    method: "POST",
    headers: { "content-type": contentType, ...headers },
    ...(chunked ? { body: stream, duplex: "half" } : { body }),
  } as RequestInit);
  const text = await response.text();
  return { status: response.status, body: text && JSON.parse(text), headers: response.headers };
}

/** Posts `body` to `source`, signed as an `hmac` source with the default settings signs it. */
function postSigned(
  herald: RunningHerald,
  source: string,
  secret: string,
  body: string,
  contentType = "application/json",
): Promise<Answer> {
  const signature = digest("sha256", secret, body, "hex");
  return post(herald, source, body, { "x-webhook-signature": signature }, contentType);
}

/** Creates a source and returns the create answer's source (with its secret in full). */
async function createSource(herald: RunningHerald, input: Record<string, unknown>) {
  const created = await herald.api("POST", "/api/sources", input);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.success, true);
  assert.equal(created.body.message, "Source created successfully");
  return created.body.source;
}

/** Creates a source verified by hex HMAC-SHA256 of the body, with `settings`; returns its secret. */
async function createHmacSource(
  herald: RunningHerald,
  name: string,
  settings: Record<string, unknown>,
): Promise<string> {
  const source = await createSource(herald, { name, verifier: { type: "hmac" }, ...settings });
  return source.secret;
}

/** Registers a webhook on the receiver and returns it with its secret in full. */
async function subscribe(herald: RunningHerald, receiver: Receiver, events = ["user.created"]) {
  const created = await herald.api("POST", "/api/webhooks", {
    name: "gateway receiver",
    url: receiver.url,
    events,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.webhook as { id: string; secret: string };
}

/** How many webhooks `source` has stored. */
async function storedCount(herald: RunningHerald, source: string): Promise<number> {
  const list = await herald.api("GET", `/api/incoming-events?source=${source}`);
  assert.equal(list.status, 200);
  return list.body.count;
}

async function detail(herald: RunningHerald, id: string) {
  const shown = await herald.api("GET", `/api/incoming-events/${id}`);
  assert.equal(shown.status, 200, JSON.stringify(shown.body));
  return shown.body.event;
}

function assertAccepted(answer: Answer) {
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.success, true);
  assert.equal(answer.body.message, "Webhook received successfully");
  assert.match(answer.body.eventId, /^evt_/);
}

function assertRefused(answer: { status: number; body: any }, status: number, code?: string) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body.success, false);
  assert.equal(typeof answer.body.error, "string");
  assert.ok(answer.body.message.length > 0);
  if (code !== undefined) assert.equal(answer.body.code, code);
}

/** Waits for `n` deliveries, then a little longer to be sure no more arrive. */
async function deliveries(receiver: Receiver, n: number) {
  if (n > 0) await waitFor(() => receiver.requests[n - 1], 3000, `${n} deliveries`);
  await sleep(250);
  assert.equal(receiver.requests.length, n);
  return receiver.requests.map((request) => ({ ...request, json: JSON.parse(request.body) }));
}

const smallPayload = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id, type: "customer.created", ...extra });

/** A signature scheme as a sender applies it. */
interface Scheme {
  name: string;
  verifier: Record<string, unknown>;
  secret?: string;
  verifiedBy: string;
  /** The request carries a signing time that can go stale. */
  timed?: boolean;
  /** The credential does not cover the body (a token). */
  token?: boolean;
  /** Signs `payload` as the sender would; `id` is its delivery id, `at` the signing time (ms). */
  sign(payload: string, secret: string, at: number, id: string): Headers | Promise<Headers>;
}

const seconds = (ms: number) => String(Math.floor(ms / 1000));

const SCHEMES: Scheme[] = [
  {
    name: "stripe-live",
    verifier: { type: "stripe" },
    secret: "whsec_gateway_stripe_0123456789abcdef",
    verifiedBy: "stripe-signature",
    timed: true,
    sign: (payload, secret, at) => ({
      "stripe-signature": stripe.webhooks.generateTestHeaderString({
        payload,
        secret,
        timestamp: Math.floor(at / 1000),
      }),
    }),
  },
  {
    name: "github-repo",
    verifier: { type: "github" },
    secret: "github-gateway-secret",
    verifiedBy: "x-hub-signature-256",
    sign: async (payload, secret, _at, id) => ({
      "x-hub-signature-256": await githubSign(secret, payload),
      "x-github-delivery": id,
      "x-github-event": "push",
    }),
  },
  {
    name: "std-hooks",
    verifier: { type: "standard-webhooks" },
    verifiedBy: "standard-webhooks",
    timed: true,
    sign: (payload, secret, at, id) => ({
      "webhook-id": id,
      "webhook-timestamp": seconds(at),
      "webhook-signature": new Webhook(secret).sign(id, new Date(at), payload),
    }),
  },
  {
    name: "hmac-384-hex",
    verifier: { type: "hmac", algorithm: "sha384", header: "X-Signature" },
    verifiedBy: "hmac-sha384",
    sign: (payload, secret, _at, id) => ({
      "x-signature": digest("sha384", secret, payload, "hex"),
      "x-webhook-delivery": id,
    }),
  },
  {
    name: "hmac-512-base64",
    verifier: {
      type: "hmac",
      algorithm: "sha512",
      encoding: "base64",
      header: "X-Signature",
      prefix: "sha512=",
    },
    verifiedBy: "hmac-sha512",
    sign: (payload, secret, _at, id) => ({
      "x-signature": `sha512=${digest("sha512", secret, payload, "base64")}`,
      "x-webhook-delivery": id,
    }),
  },
  {
    name: "hmac-timestamped",
    verifier: {
      type: "hmac",
      header: "X-Signature",
      signedContent: "timestamp.body",
      timestampHeader: "X-Timestamp",
    },
    verifiedBy: "hmac-sha256",
    timed: true,
    sign: (payload, secret, at, id) => ({
      "x-timestamp": seconds(at),
      "x-signature": digest("sha256", secret, `${seconds(at)}.${payload}`, "hex"),
      "x-webhook-delivery": id,
    }),
  },
  {
    name: "token-header",
    verifier: { type: "token", header: "X-Hook-Token" },
    verifiedBy: "token",
    token: true,
    sign: (_payload, secret, _at, id) => ({ "x-hook-token": secret, "x-webhook-delivery": id }),
  },
  {
    name: "token-bearer",
    verifier: { type: "token" },
    verifiedBy: "token",
    token: true,
    sign: (_body, secret, _at, id) => ({
      authorization: `Bearer ${secret}`,
      "x-webhook-delivery": id,
    }),
  },
];

/** Another secret of the same shape. */
const otherSecret = (secret: string) =>
  secret.startsWith("whsec_") ? `whsec_${randomBytes(24).toString("base64")}` : `${secret}-other`;

/** Creates the scheme's source and returns the secret a sender would use. */
async function createSchemeSource(
  herald: RunningHerald,
  scheme: Scheme,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const source = await createSource(herald, {
    name: scheme.name,
    verifier: scheme.verifier,
    ...(scheme.secret ? { secret: scheme.secret } : {}),
    ...extra,
  });
  assert.notEqual(source.secret, "***");
  if (scheme.secret) assert.equal(source.secret, scheme.secret);
  return source.secret;
}

for (const scheme of SCHEMES) {
  test(`${scheme.name}: a request signed as the sender signs it is accepted`, async (t) => {
    const { herald } = await setup(t);
    const secret = await createSchemeSource(herald, scheme);
    if (scheme.verifier.type === "standard-webhooks") assert.match(secret, /^whsec_/);
    const id = `evt_${randomUUID()}`;
    const payload = smallPayload(id);
    const answer = await post(herald, scheme.name, payload, {
      ...(await scheme.sign(payload, secret, Date.now(), id)),
    });
    assertAccepted(answer);
    assert.equal(answer.body.duplicate, false);
    assert.equal(answer.body.verified, true);
    assert.equal(answer.body.status, "received");
    const event = await detail(herald, answer.body.eventId);
    assert.equal(event.source, scheme.name);
    assert.equal(event.verifiedBy, scheme.verifiedBy);
    assert.equal(event.verified, true);
    assert.equal(event.dedupeKey, id);
    assert.equal(event.body, payload);
    assert.equal(event.headers.authorization, undefined);
    assert.ok(!JSON.stringify(event).includes(secret), "the source's secret is not shown");
  });

  test(`${scheme.name}: forged, stale, unreadable and oversize requests are refused and not stored`, async (t) => {
    const { herald } = await setup(t);
    const secret = await createSchemeSource(herald, scheme, { maxBodyBytes: 100 });
    const now = Date.now();
    const id = `evt_${randomUUID()}`;
    const payload = smallPayload(id);
    const signed = await scheme.sign(payload, secret, now, id);

    if (!scheme.token) {
      const tampered = payload.replace("customer.created", "customer.deleted");
      assertRefused(await post(herald, scheme.name, tampered, signed), 401, "signature_invalid");
    }
    const forged = await scheme.sign(payload, otherSecret(secret), now, id);
    assertRefused(await post(herald, scheme.name, payload, forged), 401, "signature_invalid");
    assertRefused(await post(herald, scheme.name, payload), 401, "signature_missing");
    if (scheme.timed) {
      const stale = await scheme.sign(payload, secret, now - 600_000, id);
      assertRefused(await post(herald, scheme.name, payload, stale), 401, "signature_expired");
    }
    const octets = await post(herald, scheme.name, payload, signed, "application/octet-stream");
    assertRefused(octets, 415, "unsupported_media_type");
    const big = smallPayload(id, { padding: "x".repeat(200) });
    const bigSigned = await scheme.sign(big, secret, now, id);
    assertRefused(await post(herald, scheme.name, big, bigSigned), 413, "payload_too_large");
    const streamed = await post(herald, scheme.name, big, bigSigned, "application/json", true);
    assertRefused(streamed, 413, "payload_too_large");
    assert.equal(await storedCount(herald, scheme.name), 0);

    assertAccepted(await post(herald, scheme.name, payload, signed));
    assert.equal(await storedCount(herald, scheme.name), 1);
  });

  test(`${scheme.name}: a repeated delivery id is answered as a duplicate and routed once`, async (t) => {
    const { herald, receiver } = await setup(t);
    await subscribe(herald, receiver);
    const secret = await createSchemeSource(herald, scheme, { rules: [{ emit: "user.created" }] });
    const id = `evt_${randomUUID()}`;
    const first = smallPayload(id);
    const again = smallPayload(id, { attempt: 2 });
    const send = async (body: string) =>
      post(herald, scheme.name, body, await scheme.sign(body, secret, Date.now(), id));
    const one = await send(first);
    const two = await send(again);
    assertAccepted(one);
    assertAccepted(two);
    assert.equal(one.body.status, "routed");
    assert.equal(one.body.duplicate, false);
    assert.equal(two.body.duplicate, true);
    assert.equal(two.body.eventId, one.body.eventId);
    const [delivery] = await deliveries(receiver, 1);
    assert.deepEqual(delivery?.json.data, JSON.parse(first));
    assert.equal(await storedCount(herald, scheme.name), 1);
  });
}

test("a GitHub delivery is routed by the event GitHub names in X-GitHub-Event", async (t) => {
  const { herald, receiver } = await setup(t);
  await subscribe(herald, receiver, ["sync.started"]);
  const { secret } = await createSource(herald, {
    name: "github-main",
    verifier: { type: "github" },
    rules: [{ event: "push", emit: "sync.started" }],
  });
  const payload = JSON.stringify({ ref: "refs/heads/main", after: "abc123" });
  const answer = await post(herald, "github-main", payload, {
    "x-hub-signature-256": await githubSign(secret, payload),
    "x-github-delivery": randomUUID(),
    "x-github-event": "push",
  });
  assertAccepted(answer);
  assert.equal(answer.body.status, "routed");
  assert.equal((await detail(herald, answer.body.eventId)).event, "push");
  const [delivery] = await deliveries(receiver, 1);
  assert.equal(delivery?.json.event, "sync.started");
  assert.deepEqual(delivery?.json.data, { ref: "refs/heads/main", after: "abc123" });
});

test("a source's toleranceSeconds widens the replay window of timestamped schemes", async (t) => {
  const { herald } = await setup(t);
  const scheme = SCHEMES.find((s) => s.name === "std-hooks")!;
  const secret = await createSchemeSource(herald, scheme, { toleranceSeconds: 900 });
  const id = `msg_${randomUUID()}`;
  const payload = smallPayload(id);
  const tenMinutesAgo = await scheme.sign(payload, secret, Date.now() - 600_000, id);
  assertAccepted(await post(herald, scheme.name, payload, tenMinutesAgo));
  const put = await herald.api("PUT", `/api/sources/${scheme.name}`, { toleranceSeconds: 60 });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const other = smallPayload(`${id}-2`);
  const stale = await scheme.sign(other, secret, Date.now() - 600_000, `${id}-2`);
  assertRefused(await post(herald, scheme.name, other, stale), 401, "signature_expired");
});

test("incoming bodies are read as UTF-8 only: another charset is 415 unless plain ASCII, other bytes 400, after the signature", async (t) => {
  const { herald } = await setup(t);
  const secret = await createHmacSource(herald, "utf8-only", {});
  const send = async (bytes: Buffer, contentType: string, signed = true) => {
    const signature = createHmac("sha256", signed ? secret : "forged")
      .update(bytes)
      .digest("hex");
    const response = await fetch(`${herald.url}/api/incoming-webhooks/utf8-only`, {
      method: "POST",
      headers: { "content-type": contentType, "x-webhook-signature": signature },
      body: bytes,
    });
    return {
      status: response.status,
      body: (await response.json()) as any,
      headers: response.headers,
    };
  };
  const notUtf8 = Buffer.concat([
    Buffer.from('{"event":"x","v":"'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('"}'),
  ]);
  assertRefused(await send(notUtf8, "application/json", false), 401, "signature_invalid");
  const broken = await send(notUtf8, "application/json");
  assertRefused(broken, 400, "malformed_json");
  assert.match(
    broken.body.message,
    /^The request body is not valid UTF-8 text\. Send the body encoded as UTF-8\.$/,
  );
  const latin1 = (text: string) => Buffer.from(text, "latin1");
  const refusedCharsets: Array<[Buffer, string, string]> = [
    [latin1('{"event":"caf\u00e9"}'), "application/json; charset=iso-8859-1", "iso-8859-1"],
    [Buffer.from('{"event":"x"}', "utf16le"), "application/json; charset=utf-16", "utf-16"],
    [
      latin1("name=caf\u00e9"),
      "application/x-www-form-urlencoded; charset=ISO-8859-1",
      "ISO-8859-1",
    ],
    [latin1("<x>caf\u00e9</x>"), "application/xml; charset=windows-1252", "windows-1252"],
    [latin1("caf\u00e9"), "text/plain; charset=latin1", "latin1"],
  ];
  for (const [bytes, contentType, charset] of refusedCharsets) {
    assertRefused(await send(bytes, contentType, false), 401, "signature_invalid");
    const refused = await send(bytes, contentType);
    assertRefused(refused, 415, "unsupported_media_type");
    assert.equal(
      refused.body.message,
      `The body is declared as charset '${charset}', and Herald reads webhook bodies only as UTF-8. Send the body in UTF-8 (charset=utf-8 in Content-Type, or no charset).`,
    );
  }
  for (const contentType of [
    "application/x-www-form-urlencoded",
    "application/xml",
    "text/plain",
  ]) {
    const refused = await send(latin1("<x>caf\u00e9</x>"), contentType);
    assertRefused(refused, 400, "bad_request");
    assert.match(refused.body.message, /not valid UTF-8/);
  }
  // UTF-16 sent as if it were UTF-8: with a byte order mark, or without one.
  for (const bytes of [
    Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"event":"x"}', "utf16le")]),
    Buffer.from('{"event":"x"}', "utf16le"),
    Buffer.from("<x>1</x>", "utf16le"),
  ]) {
    const refused = await send(bytes, bytes[0] === 0x3c ? "application/xml" : "application/json");
    assertRefused(refused, 400);
    const message: string = refused.body.message;
    assert.ok(!message.includes("\u0000") && !message.includes("\ufffd"), JSON.stringify(message));
    assert.match(refused.body.message, /Send the body encoded as UTF-8\.$/);
  }
  assertAccepted(
    await send(Buffer.from('{"event":"plain"}'), "application/json; charset=iso-8859-1"),
  );
  assertAccepted(await send(Buffer.from("caf\u00e9"), "text/plain; charset=UTF-8"));
  assert.equal(await storedCount(herald, "utf8-only"), 2);
});

test("an incoming body with a Content-Encoding is 415, signed or not, in any content type", async (t) => {
  const { herald } = await setup(t);
  for (const contentType of ["application/json", "text/plain"]) {
    const refused = await post(
      herald,
      "custom",
      '{"event":"x"}',
      { "content-encoding": "br" },
      contentType,
    );
    assertRefused(refused, 415, "unsupported_media_type");
    assert.match(refused.body.message, /uncompressed/);
  }
});

test("an incoming or API body in a transfer coding past chunked (gzip, chunked) is 415", async (t) => {
  const { herald } = await setup(t);
  const { hostname, port } = new URL(herald.url);
  for (const path of ["/api/incoming-webhooks/custom", "/api/webhooks/trigger"]) {
    const answer = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: hostname,
          port,
          path,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "transfer-encoding": "gzip, chunked",
            authorization: `Bearer ${TEST_API_KEY}`,
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on("error", reject);
      req.end(gzipSync('{"event":"user.created"}'));
    });
    assert.equal(answer.status, 415, `${path}: ${JSON.stringify(answer.body)}`);
    assert.match(answer.body.message, /Transfer-Encoding: gzip, chunked/);
  }
});

test("a source sent back with its masked secret keeps its secret; a blank secret is refused", async (t) => {
  const { herald } = await setup(t);
  const scheme = SCHEMES.find((s) => s.name === "std-hooks")!;
  const secret = await createSchemeSource(herald, scheme);
  const read = await herald.api("GET", `/api/sources/${scheme.name}`);
  assert.equal(read.body.source.secret, "***");
  const put = await herald.api("PUT", `/api/sources/${scheme.name}`, {
    secret: read.body.source.secret,
    toleranceSeconds: 120,
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const id = `msg_${randomUUID()}`;
  const payload = smallPayload(id);
  assertAccepted(
    await post(herald, scheme.name, payload, await scheme.sign(payload, secret, Date.now(), id)),
  );
  for (const blank of ["   ", "a\u0000b"]) {
    const refused = await herald.api("PUT", `/api/sources/${scheme.name}`, { secret: blank });
    assertRefused(refused, 400, "validation_failed");
    assert.equal(refused.body.field, "secret");
  }
});

const xanoBody = (table: string) =>
  JSON.stringify({ event: "record.created", data: { table, record: { name: "John Doe" } } });

test("a signed Xano webhook is routed by rules to the webhooks of the emitted event", async (t) => {
  const { herald, receiver } = await setup(t);
  const webhook = await subscribe(herald, receiver);
  const rules = [
    {
      event: "record.created",
      where: { "data.table": "users" },
      emit: "user.created",
      data: "data.record",
    },
    {
      event: ["record.created", "record.updated"],
      where: { "data.table": "invoices" },
      emit: "user.updated",
      data: "data.missing",
    },
    {
      event: "record.created",
      where: { "data.table": "names" },
      emit: "user.updated",
      data: "data.record.name",
    },
  ];
  const put = await herald.api("PUT", "/api/sources/xano", { rules });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assert.equal(put.body.source.builtIn, true);
  assert.deepEqual(put.body.source.rules, rules);

  const send = (body: string) =>
    post(herald, "xano", body, {
      "x-webhook-signature": digest("sha256", XANO_SECRET, body, "hex"),
    });
  const users = await send(xanoBody("users"));
  assertAccepted(users);
  assert.equal(users.body.status, "routed");
  const [delivery] = await deliveries(receiver, 1);
  assert.ok(delivery);
  assert.deepEqual(Object.keys(delivery.json).sort(), ["data", "event", "timestamp"]);
  assert.equal(delivery.json.event, "user.created");
  assert.deepEqual(delivery.json.data, { name: "John Doe" });
  assert.ok(!Number.isNaN(Date.parse(delivery.json.timestamp)));
  assert.equal(
    delivery.headers["x-webhook-signature"],
    digest("sha256", webhook.secret, delivery.body, "hex"),
  );
  const routed = await detail(herald, users.body.eventId);
  assert.equal(routed.status, "routed");
  assert.match(routed.outgoingEventId, /^evt_/);

  const orders = await send(xanoBody("orders"));
  assertAccepted(orders);
  assert.equal(orders.body.status, "unrouted");

  const invoices = await send(xanoBody("invoices"));
  assertAccepted(invoices);
  assert.equal(invoices.body.status, "failed");
  const failed = await detail(herald, invoices.body.eventId);
  assert.equal(failed.status, "failed");
  assert.equal(failed.outgoingEventId, null);
  assert.match(failed.routeError, /data\.missing/);
  // An event's data is an object: a rule that picks a string routes nothing, and says why.
  const names = await send(xanoBody("names"));
  assertAccepted(names);
  assert.equal(names.body.status, "failed");
  assert.match(
    (await detail(herald, names.body.eventId)).routeError,
    /holds a string.*JSON object/,
  );
  await deliveries(receiver, 1);
});

test("form and XML bodies are verified on their raw bytes and routed by their fields", async (t) => {
  const { herald, receiver } = await setup(t);
  await subscribe(herald, receiver, ["user.created", "user.updated"]);
  const rules = [
    { event: "record.created", where: { table: "users" }, emit: "user.created" },
    { where: { "event.table": "users" }, emit: "user.updated", data: "event" },
  ];
  const secret = await createHmacSource(herald, "legacy", { rules });
  const send = (body: string, type: string) =>
    post(
      herald,
      "legacy",
      body,
      { "x-webhook-signature": digest("sha256", secret, body, "hex") },
      type,
    );

  const form = await send(
    "event=record.created&table=users&name=John+Doe",
    "application/x-www-form-urlencoded",
  );
  assertAccepted(form);
  assert.equal(form.body.status, "routed");
  const xml = "<event><type>record.created</type><table>users</table></event>";
  const fromXml = await send(xml, "application/xml; charset=utf-8");
  assertAccepted(fromXml);
  assert.equal(fromXml.body.status, "routed");
  const orders = await send(xml.replace("users", "orders"), "text/xml");
  assertAccepted(orders);
  assert.equal(orders.body.status, "unrouted");
  const text = await send("record.created users", "text/plain");
  assertAccepted(text);
  assert.equal(text.body.status, "unrouted");

  const received = await deliveries(receiver, 2);
  const byEvent = Object.fromEntries(received.map((r) => [r.json.event, r.json.data]));
  assert.deepEqual(byEvent["user.created"], {
    event: "record.created",
    table: "users",
    name: "John Doe",
  });
  assert.deepEqual(byEvent["user.updated"], { type: "record.created", table: "users" });
  assert.equal((await detail(herald, fromXml.body.eventId)).body, xml);
  // An XML body names its event in its root element.
  assert.equal((await detail(herald, fromXml.body.eventId)).event, "record.created");

  const broken = "<event><type>record.created</event>";
  assertRefused(await send(broken, "application/xml"), 400, "bad_request");
  // Well-formed, but refused by the XML reader: an external entity, a prototype name, deep nesting.
  for (const unreadable of [
    '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    "<__proto__><a>1</a></__proto__>",
    `${"<a>".repeat(3000)}x${"</a>".repeat(3000)}`,
  ]) {
    assertRefused(await send(unreadable, "application/xml"), 400, "bad_request");
  }
  assert.equal(await storedCount(herald, "legacy"), 4);
});

test("an XML body's event name is an <event> or <type> element at the top or under the root, never the root's own name", async (t) => {
  const { herald } = await setup(t);
  const secret = await createHmacSource(herald, "xml-names", {});
  const nameOf = async (xml: string) => {
    const answer = await postSigned(herald, "xml-names", secret, xml, "application/xml");
    assertAccepted(answer);
    return (await detail(herald, answer.body.eventId)).event;
  };
  assert.equal(
    await nameOf("<order><type>order.created</type><id>1</id></order>"),
    "order.created",
  );
  assert.equal(await nameOf("<type>order.paid</type>"), "order.paid");
  assert.equal(await nameOf("<record.created><id>1</id></record.created>"), null);
  assert.equal(await nameOf("<a><b><event>deep</event></b></a>"), null);
});

test("XML's predefined entities and character references are decoded in the routed data", async (t) => {
  const { herald, receiver } = await setup(t);
  await subscribe(herald, receiver);
  const secret = await createHmacSource(herald, "xml-text", {
    rules: [{ where: { "event.note": { exists: true } }, emit: "user.created", data: "event" }],
  });
  const xml = '<event><note kind="a &amp; b">Tom &amp; Jerry &lt;3 &#233;t&#xE9;</note></event>';
  const answer = await postSigned(herald, "xml-text", secret, xml, "application/xml");
  assertAccepted(answer);
  assert.equal(answer.body.status, "routed");
  const [delivery] = await deliveries(receiver, 1);
  assert.deepEqual(delivery?.json.data, {
    note: { "#text": "Tom & Jerry <3 été", "@_kind": "a & b" },
  });
});

test("an XML entity bomb is not expanded and Herald stays responsive", async (t) => {
  const { herald, receiver } = await setup(t);
  await subscribe(herald, receiver);
  const rules = [{ where: { x: { exists: true } }, emit: "user.created", data: "x" }];
  const secret = await createHmacSource(herald, "xml-in", { rules });
  const entities = [`<!ENTITY a "${"a".repeat(50)}">`];
  for (let i = 1; i <= 8; i++)
    entities.push(`<!ENTITY e${i} "${`&${i === 1 ? "a" : `e${i - 1}`};`.repeat(10)}">`);
  const bomb = `<?xml version="1.0"?><!DOCTYPE x [${entities.join("")}]><x><v>&e8;</v></x>`;

  const started = Date.now();
  const answer = await postSigned(herald, "xml-in", secret, bomb, "application/xml");
  assert.ok(Date.now() - started < 1000, "the bomb is handled quickly");
  assertRefused(answer, 400, "bad_request");
  assert.match(answer.body.message, /Send plain XML without a DOCTYPE\.$/);
  await deliveries(receiver, 0);
  const health = await fetch(`${herald.url}/api/incoming-webhooks/health`);
  assert.equal(health.status, 200);
});

test("XML with any DOCTYPE is 400, whatever it declares; the word in the content is read", async (t) => {
  const { herald } = await setup(t);
  const secret = await createHmacSource(herald, "xml-doctype", {});
  const send = (xml: string) => postSigned(herald, "xml-doctype", secret, xml, "application/xml");
  for (const xml of [
    '<!DOCTYPE x [<!ENTITY who "world">]><x><v>&who;</v></x>',
    '<?xml version="1.0"?>\n<!-- a note --><?app x?>\n<!doctype x><x><v>1</v></x>',
    '\uFEFF<!DOCTYPE x SYSTEM "x.dtd"><x/>',
  ]) {
    const refused = await send(xml);
    assertRefused(refused, 400, "bad_request");
    assert.match(refused.body.message, /has a DOCTYPE.*Send plain XML without a DOCTYPE\.$/);
  }
  const plain = await send("<x><!-- <!DOCTYPE x> --><v><![CDATA[<!DOCTYPE x>]]></v></x>");
  assertAccepted(plain);
});

test("a source over its rate limit is answered 429 with Retry-After and nothing is stored", async (t) => {
  const { herald } = await setup(t);
  const secret = await createHmacSource(herald, "bursty", { rateLimitPerSecond: 2 });
  const answers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => {
      const body = JSON.stringify({ event: "ping", n: i });
      return post(herald, "bursty", body, {
        "x-webhook-signature": digest("sha256", secret, body, "hex"),
      });
    }),
  );
  const accepted = answers.filter((a) => a.status === 200);
  const limited = answers.filter((a) => a.status === 429);
  assert.equal(accepted.length + limited.length, 10);
  assert.ok(accepted.length >= 1 && limited.length >= 3, `${accepted.length} accepted`);
  for (const answer of limited) {
    assertRefused(answer, 429, "rate_limited");
    assert.match(answer.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
  }
  assert.equal(await storedCount(herald, "bursty"), accepted.length);
});

test("limits of one are told in the singular: 1 request per second, 1 byte", async (t) => {
  const { herald } = await setup(t);
  await createHmacSource(herald, "tiny", { maxBodyBytes: 1 });
  const large = await post(herald, "tiny", "{}", { "x-webhook-signature": "00" });
  assertRefused(large, 413, "payload_too_large");
  assert.match(large.body.message, /larger than the 1 byte source 'tiny' accepts\./);
  const secret = await createHmacSource(herald, "slow", { rateLimitPerSecond: 1 });
  const body = JSON.stringify({ event: "ping" });
  const signed = { "x-webhook-signature": digest("sha256", secret, body, "hex") };
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await post(herald, "slow", body, signed));
  const limited = answers.find((answer) => answer.status === 429);
  assert.ok(limited, JSON.stringify(answers.map((answer) => answer.status)));
  assert.match(limited.body.message, /^Source 'slow' accepts 1 request per second and /);
});

test("forged requests do not use up a source's rate: the real sender still gets through", async (t) => {
  const { herald } = await setup(t);
  const secret = await createHmacSource(herald, "guarded", { rateLimitPerSecond: 1 });
  const body = JSON.stringify({ event: "ping" });
  for (let i = 0; i < 12; i++) {
    const forged = await post(herald, "guarded", body, {
      "x-webhook-signature": digest("sha256", "not-the-secret", body, "hex"),
    });
    assertRefused(forged, 401);
  }
  const real = await post(herald, "guarded", body, {
    "x-webhook-signature": digest("sha256", secret, body, "hex"),
  });
  assertAccepted(real);
  assert.equal(await storedCount(herald, "guarded"), 1);
});

test("numbers the routed event could not carry as sent fail the route, saying where; the webhook is kept as sent", async (t) => {
  const { herald, receiver } = await setup(t);
  await subscribe(herald, receiver);
  const put = await herald.api("PUT", "/api/sources/xano", { rules: [{ emit: "user.created" }] });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const send = (body: string) =>
    post(herald, "xano", body, {
      "x-webhook-signature": digest("sha256", XANO_SECRET, body, "hex"),
    });
  for (const [body, path] of [
    ['{"event":"x","n":1e400}', /data\.n is a number too large/],
    [
      '{"event":"x","ids":[1,12345678901234567890]}',
      /data\.ids\[1\] is a number of more digits than/,
    ],
  ] as const) {
    const answer = await send(body);
    assertAccepted(answer);
    assert.equal(answer.body.status, "failed", body);
    const stored = await detail(herald, answer.body.eventId);
    assert.match(stored.routeError, /^rule 1 matched, but /);
    assert.match(stored.routeError, path);
    assert.equal(stored.outgoingEventId, null);
    assert.equal(stored.body, body);
  }
  // A number that survives the trip is routed as before.
  const fine = await send('{"event":"x","n":12345678901234,"f":1.5}');
  assert.equal(fine.body.status, "routed");
  const [delivery] = await deliveries(receiver, 1);
  assert.deepEqual(delivery?.json.data, { event: "x", n: 12345678901234, f: 1.5 });
});

test("a body nested too deeply for an event fails the route, at receipt and on replay; the webhook is kept", async (t) => {
  const { herald } = await setup(t);
  const body = `{"event":"x","d":${"[".repeat(20_000)}${"]".repeat(20_000)}}`;
  const signed = () =>
    post(herald, "xano", body, {
      "x-webhook-signature": digest("sha256", XANO_SECRET, body, "hex"),
      "x-webhook-delivery": `deep-${Math.random()}`,
    });
  // Without rules it is stored as it came; with a rule that emits it, the route fails.
  const plain = await signed();
  assertAccepted(plain);
  assert.equal(plain.body.status, "received");
  const put = await herald.api("PUT", "/api/sources/xano", { rules: [{ emit: "user.created" }] });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const routed = await signed();
  assertAccepted(routed);
  assert.equal(routed.body.status, "failed");
  const stored = await detail(herald, routed.body.eventId);
  assert.match(stored.routeError, /^rule 1 matched, but its data is nested too deeply/);
  assert.equal(stored.body, body);
  const replay = await herald.api("POST", `/api/incoming-events/${plain.body.eventId}/replay`);
  assert.equal(replay.status, 200, JSON.stringify(replay.body));
  assert.match(JSON.stringify(replay.body), /nested too deeply to be sent as an event/);
});

test("headers named as credentials are not stored; signature headers are", async (t) => {
  const { herald } = await setup(t);
  const body = JSON.stringify({ event: "ping" });
  const signature = digest("sha256", XANO_SECRET, body, "hex");
  const credentials = {
    "x-auth-token": "cred-1",
    "x-my-secret": "cred-2",
    "x-user-password": "cred-3",
    "x-passwd": "cred-4",
    "x-apikey": "cred-5",
    "api-key": "cred-6",
    "x-session-id": "cred-7",
    "x-auth-user": "cred-8",
    "x-csrf-token": "cred-9",
    "proxy-authorization": "Basic cred-10",
    authentication: "Bearer cred-11",
    "set-cookie": "sid=cred-12",
    "x-signing-key": "cred-13",
    "x-private-key": "cred-14",
    "x-credentials": "cred-15",
    "x-passphrase": "cred-16",
  };
  const signatures = {
    "stripe-signature": "t=1,v1=00",
    "x-hub-signature-256": "sha256=00",
    "webhook-signature": "v1,AA==",
  };
  const answer = await post(herald, "xano", body, {
    "x-webhook-signature": signature,
    ...credentials,
    ...signatures,
    "x-request-id": "kept",
    "idempotency-key": "kept too",
  });
  assertAccepted(answer);
  const { headers } = await detail(herald, answer.body.eventId);
  assert.equal(headers["idempotency-key"], "kept too");
  for (const name of Object.keys(credentials)) assert.equal(headers[name], undefined, name);
  assert.ok(!JSON.stringify(headers).includes("cred-"), JSON.stringify(headers));
  assert.equal(headers["x-webhook-signature"], signature);
  for (const [name, value] of Object.entries(signatures)) assert.equal(headers[name], value);
  assert.equal(headers["x-request-id"], "kept");
});

test("credential headers stored before they were kept out are not shown either", async (t) => {
  const store = tempSqliteStore(t, "herald-gateway-");
  const herald = await startHerald(ENV, { store });
  t.after(() => herald.stop());
  await createSource(herald, {
    name: "shop",
    verifier: { type: "token", header: "X-Shop-Access" },
    secret: "shop-token-0123456789",
  });
  // As an earlier release stored them: every header, credentials included.
  const headers = {
    "x-shop-access": "cred-token",
    "x-session-id": "cred-session",
    authentication: "Bearer cred-auth",
    "x-request-id": "kept",
  };
  for (const [id, service] of [
    ["in_earlier_shop", "shop"],
    ["in_earlier_gone", "gone"],
  ] as const) {
    await store.saveIncoming({
      id,
      service,
      eventName: "ping",
      dedupeKey: null,
      headers,
      rawBody: Buffer.from("{}"),
      contentType: "application/json",
      verifiedBy: "token",
      verified: true,
      status: "received",
      outgoingEventId: null,
      routeError: null,
      receivedAt: Date.now(),
    });
  }
  assert.deepEqual((await detail(herald, "in_earlier_shop")).headers, { "x-request-id": "kept" });
  // A source deleted since: its token header is not known, the rest is still kept out.
  assert.deepEqual((await detail(herald, "in_earlier_gone")).headers, {
    "x-shop-access": "cred-token",
    "x-request-id": "kept",
  });
});

test("received webhooks can be listed, inspected without credentials, and replayed", async (t) => {
  const { herald, receiver } = await setup(t);
  await subscribe(herald, receiver);
  const secret = await createHmacSource(herald, "shop", {
    rules: [{ event: "order.paid", emit: "user.updated" }],
  });
  const body = JSON.stringify({ event: "order.created", data: { orderId: 42 } });
  const deliveryId = `del_${randomUUID()}`;
  const shop = await post(herald, "shop", body, {
    "x-webhook-signature": digest("sha256", secret, body, "hex"),
    "x-webhook-delivery": deliveryId,
    authorization: "Bearer not-for-storage",
    cookie: "session=not-for-storage",
    "x-extra": "kept",
  });
  assertAccepted(shop);
  assert.equal(shop.body.status, "unrouted");
  const xanoPayload = xanoBody("users");
  const xano = await post(herald, "xano", xanoPayload, {
    "x-webhook-signature": digest("sha256", XANO_SECRET, xanoPayload, "hex"),
  });
  assert.equal(xano.body.status, "received");

  const list = async (query: string) => {
    const answer = await herald.api("GET", `/api/incoming-events?${query}`);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  };
  const ids = async (query: string) => (await list(query)).events.map((e: any) => e.id);
  assert.deepEqual(await ids("source=shop"), [shop.body.eventId]);
  assert.deepEqual(await ids("status=received"), [xano.body.eventId]);
  assert.equal((await list("source=shop&status=received")).count, 0);
  assert.equal((await list(`since=${new Date(Date.now() + 60_000).toISOString()}`)).count, 0);
  const firstPage = await list("limit=1");
  assert.equal(firstPage.count, 1);
  assert.equal(firstPage.events[0].id, xano.body.eventId);
  const secondPage = await list(`limit=1&cursor=${encodeURIComponent(firstPage.nextCursor)}`);
  assert.equal(secondPage.events[0].id, shop.body.eventId);
  assert.equal(secondPage.nextCursor, null);

  const event = await detail(herald, shop.body.eventId);
  assert.equal(event.source, "shop");
  assert.equal(event.event, "order.created");
  assert.equal(event.status, "unrouted");
  assert.equal(event.body, body);
  assert.equal(event.bodyEncoding, "utf8");
  assert.equal(event.size, Buffer.byteLength(body));
  assert.equal(event.contentType, "application/json");
  assert.equal(event.verifiedBy, "hmac-sha256");
  assert.equal(event.dedupeKey, deliveryId);
  assert.equal(event.headers["x-extra"], "kept");
  assert.equal(event.headers["x-webhook-delivery"], deliveryId);
  assert.equal(event.headers.authorization, undefined);
  assert.equal(event.headers.cookie, undefined);
  assert.ok(!JSON.stringify(event).includes("not-for-storage"));
  assert.equal(event.links.replay, `/api/incoming-events/${shop.body.eventId}/replay`);
  await deliveries(receiver, 0);

  // A source without rules has nothing to route: a replay leaves its webhook `received`.
  const unruled = await herald.api("POST", `/api/incoming-events/${xano.body.eventId}/replay`);
  assert.equal(unruled.status, 200, JSON.stringify(unruled.body));
  assert.equal(unruled.body.event.status, "received");
  assert.equal(unruled.body.deliveries, 0);
  assert.equal(unruled.body.outgoingEventId, null);

  const put = await herald.api("PUT", "/api/sources/shop", {
    rules: [{ event: "order.created", emit: "user.created", data: "data" }],
  });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const replay = await herald.api("POST", `/api/incoming-events/${shop.body.eventId}/replay`);
  assert.equal(replay.status, 200, JSON.stringify(replay.body));
  assert.equal(replay.body.success, true);
  assert.equal(replay.body.deliveries, 1);
  assert.equal(replay.body.event.status, "routed");
  assert.match(replay.body.event.outgoingEventId, /^evt_/);
  assert.equal(replay.body.outgoingEventId, replay.body.event.outgoingEventId);
  const [delivery] = await deliveries(receiver, 1);
  assert.equal(delivery?.json.event, "user.created");
  assert.deepEqual(delivery?.json.data, { orderId: 42 });
  const routed = await detail(herald, shop.body.eventId);
  assert.equal(routed.status, "routed");
  assert.equal(routed.links.outgoingEvent, `/api/events/${replay.body.event.outgoingEventId}`);
  const produced = await herald.api("GET", routed.links.outgoingEvent);
  assert.equal(produced.status, 200, JSON.stringify(produced.body));
  assert.equal(produced.body.event.id, replay.body.event.outgoingEventId);
  assert.equal(produced.body.event.event, "user.created");
  assert.deepEqual(produced.body.event.payload.data, { orderId: 42 });
  assert.equal(produced.body.event.incomingEventId, shop.body.eventId);
  assert.equal(
    produced.body.event.links.incomingEvent,
    `/api/incoming-events/${shop.body.eventId}`,
  );

  // A second replay routes it again: both events stay linked, newest first.
  const again = await herald.api("POST", `/api/incoming-events/${shop.body.eventId}/replay`);
  assert.equal(again.status, 200, JSON.stringify(again.body));
  const newest = again.body.event.outgoingEventId;
  assert.notEqual(newest, replay.body.event.outgoingEventId);
  const expectedRouted = [newest, replay.body.event.outgoingEventId];
  assert.deepEqual(
    again.body.event.routedEvents.map((e: { id: string }) => e.id),
    expectedRouted,
  );
  await deliveries(receiver, 2);
  const twice = await detail(herald, shop.body.eventId);
  assert.deepEqual(
    twice.routedEvents.map((e: { id: string }) => e.id),
    expectedRouted,
  );
  assert.equal(twice.routedEvents[0].event, "user.created");
  assert.equal(twice.routedEvents[0].link, `/api/events/${newest}`);
  assert.equal(twice.links.outgoingEvent, `/api/events/${newest}`);
  const unroutedDetail = await detail(herald, xano.body.eventId);
  assert.deepEqual(unroutedDetail.routedEvents, []);

  // Replays side by side: each answer names the event its own replay made.
  const together = await Promise.all(
    Array.from({ length: 6 }, () =>
      herald.api("POST", `/api/incoming-events/${shop.body.eventId}/replay`),
    ),
  );
  const made = together.map((answer) => answer.body.event.outgoingEventId as string);
  assert.equal(new Set(made).size, 6, JSON.stringify(made));
  for (const answer of together)
    assert.equal(answer.body.outgoingEventId, answer.body.event.outgoingEventId);
  const afterAll = await detail(herald, shop.body.eventId);
  const listed = afterAll.routedEvents.map((e: { id: string }) => e.id);
  for (const id of made) assert.ok(listed.includes(id), `${id} not among ${listed}`);
  await deliveries(receiver, 8);

  assertRefused(
    await herald.api("GET", "/api/incoming-events/evt_unknown"),
    404,
    "incoming_event_not_found",
  );
  assertRefused(await herald.api("POST", "/api/incoming-events/evt_unknown/replay"), 404);
  const anonymous = [
    ["GET", "/api/incoming-events"],
    ["GET", `/api/incoming-events/${shop.body.eventId}`],
    ["POST", `/api/incoming-events/${shop.body.eventId}/replay`],
    ["GET", "/api/sources"],
    ["GET", routed.links.outgoingEvent],
  ];
  for (const [method, path] of anonymous) {
    const response = await fetch(`${herald.url}${path}`, { method });
    assert.equal(response.status, 401, `${method} ${path}`);
    assertRefused({ status: 401, body: await response.json() }, 401, "unauthorized");
  }
  const wrongKey = await fetch(`${herald.url}/api/incoming-events`, {
    headers: { authorization: `Bearer ${TEST_API_KEY}-wrong` },
  });
  assert.equal(wrongKey.status, 401);
});

test("sources can be created, listed, shown, changed and deleted", async (t) => {
  const { herald } = await setup(t);
  const listed = await herald.api("GET", "/api/sources");
  assert.equal(listed.status, 200);
  const builtIns = listed.body.sources.filter((s: any) => s.builtIn).map((s: any) => s.name);
  assert.deepEqual(builtIns.sort(), ["custom", "stripe", "xano"]);
  for (const source of listed.body.sources) assert.equal(source.secret, "***");

  const rules = [{ event: "order.created", emit: "user.created" }];
  const created = await createSource(herald, {
    name: "orders-hook",
    verifier: { type: "hmac", header: "X-Signature" },
    rules,
  });
  assert.equal(created.url, "/api/incoming-webhooks/orders-hook");
  assert.equal(created.builtIn, false);
  assert.equal(created.verified, true);
  assert.equal(created.verifier.header, "x-signature");
  assert.equal(created.verifier.algorithm, "sha256");
  assert.match(created.secret, /^[0-9a-f]{64}$/);
  assert.deepEqual(created.rules, rules);

  const shown = await herald.api("GET", "/api/sources/orders-hook");
  assert.equal(shown.status, 200);
  assert.equal(shown.body.source.secret, "***");
  assert.deepEqual(shown.body.source.rules, rules);
  const all = await herald.api("GET", "/api/sources");
  assert.equal(all.body.count, 4);
  assert.ok(all.body.sources.some((s: any) => s.name === "orders-hook" && s.secret === "***"));

  const changed = await herald.api("PUT", "/api/sources/orders-hook", {
    maxBodyBytes: 2048,
    rateLimitPerSecond: 10,
    rules: [],
  });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.equal(changed.body.source.maxBodyBytes, 2048);
  assert.equal(changed.body.source.rateLimitPerSecond, 10);
  assert.deepEqual(changed.body.source.rules, []);
  assert.equal(changed.body.source.secret, "***");
  const body = '{"event":"order.created"}';
  const signed = { "x-signature": digest("sha256", created.secret, body, "hex") };
  const received = await post(herald, "orders-hook", body, signed);
  assertAccepted(received);

  const openSource = await herald.api("POST", "/api/sources", {
    name: "open-hook",
    verifier: { type: "none" },
    allowUnverified: true,
  });
  assert.equal(openSource.status, 201, JSON.stringify(openSource.body));
  const signedNow = await herald.api("PUT", "/api/sources/open-hook", {
    verifier: { type: "hmac" },
  });
  assert.equal(signedNow.status, 200, JSON.stringify(signedNow.body));
  assert.match(
    signedNow.body.source.secret,
    /^[0-9a-f]{64}$/,
    "a secret made by PUT is shown once",
  );
  assert.equal((await herald.api("GET", "/api/sources/open-hook")).body.source.secret, "***");
  const openBody = '{"event":"x"}';
  assertAccepted(
    await post(herald, "open-hook", openBody, {
      "x-webhook-signature": digest("sha256", signedNow.body.source.secret, openBody, "hex"),
    }),
  );
  assert.equal((await herald.api("DELETE", "/api/sources/open-hook")).status, 200);

  const again = await herald.api("POST", "/api/sources", {
    name: "orders-hook",
    verifier: { type: "token" },
  });
  assertRefused(again, 409, "conflict");
  assertRefused(
    await herald.api("POST", "/api/sources", { name: "xano", verifier: { type: "token" } }),
    409,
  );
  const bad = (input: Record<string, unknown>) => herald.api("POST", "/api/sources", input);
  assertRefused(await bad({ name: "open", verifier: { type: "none" } }), 400, "validation_failed");
  assertRefused(
    await bad({ name: "Bad Name!", verifier: { type: "token" } }),
    400,
    "validation_failed",
  );
  assertRefused(await bad({ name: "pay", verifier: { type: "stripe" } }), 400, "validation_failed");
  const health = await bad({ name: "health", verifier: { type: "token" } });
  assertRefused(health, 400, "validation_failed");
  assert.match(health.body.message, /health check/);
  const unknownType = await bad({ name: "kind", verifier: { type: "nope" } });
  assertRefused(unknownType, 400, "validation_failed");
  assert.match(unknownType.body.message, /one of 'hmac', 'token'/);
  const unknownEmit = await bad({
    name: "emits",
    verifier: { type: "token" },
    rules: [{ emit: "order.shipped" }],
  });
  assertRefused(unknownEmit, 400, "unknown_event_type");

  const open = await createSource(herald, {
    name: "open",
    verifier: { type: "none" },
    allowUnverified: true,
  });
  assert.equal(open.secret, null);
  assert.equal(open.verified, false);
  const unsigned = await post(herald, "open", '{"event":"anything"}');
  assertAccepted(unsigned);
  assert.equal(unsigned.body.verified, false);
  const stored = await detail(herald, unsigned.body.eventId);
  assert.equal(stored.verified, false);
  assert.equal(stored.verifiedBy, "none");

  assertRefused(await herald.api("PUT", "/api/sources/xano", { verifier: { type: "hmac" } }), 400);
  assertRefused(await herald.api("PUT", "/api/sources/xano", { secret: "new-secret" }), 400);
  const limits = await herald.api("PUT", "/api/sources/xano", { maxBodyBytes: 4096 });
  assert.equal(limits.status, 200, JSON.stringify(limits.body));
  assert.equal(limits.body.source.builtIn, true);
  assert.equal(limits.body.source.maxBodyBytes, 4096);
  assert.equal(limits.body.source.verifier.type, "xano");
  assertRefused(await herald.api("DELETE", "/api/sources/xano"), 400, "validation_failed");
  assertRefused(await herald.api("GET", "/api/sources/nope"), 404, "source_not_found");

  const removed = await herald.api("DELETE", "/api/sources/orders-hook");
  assert.equal(removed.status, 200, JSON.stringify(removed.body));
  assert.equal(removed.body.success, true);
  assertRefused(await herald.api("GET", "/api/sources/orders-hook"), 404, "source_not_found");
  assertRefused(await herald.api("DELETE", "/api/sources/orders-hook"), 404);
  assertRefused(await post(herald, "orders-hook", body, signed), 404, "unknown_service");
  // What it received is kept; a replay says what is missing and how to bring it back.
  const orphan = await herald.api("POST", `/api/incoming-events/${received.body.eventId}/replay`);
  assertRefused(orphan, 404, "unknown_service");
  assert.match(orphan.body.message, /no longer exists.*Create the source again/);
});

test("a source request is checked whole: unknown fields, options of another verifier, and rules that cannot work are 400, naming the field", async (t) => {
  const { herald } = await setup(t);
  const create = (body: Record<string, unknown>) => herald.api("POST", "/api/sources", body);
  const refusedField = async (
    answer: Promise<{ status: number; body: any }>,
    field: string,
    message?: RegExp,
  ) => {
    const got = await answer;
    assertRefused(got, 400);
    assert.equal(got.body.field, field, JSON.stringify(got.body));
    if (message) assert.match(got.body.message, message);
  };
  const rule = { emit: "user.created" };
  await refusedField(
    create({ name: "typo", verifier: { type: "hmac" }, rule: [rule] }),
    "rule",
    /has a field 'rule' that Herald does not take/,
  );
  await refusedField(
    create({ name: "other-option", verifier: { type: "xano", header: "X-Other" } }),
    "verifier.header",
    /not an option of the 'xano' verifier/,
  );
  await refusedField(
    create({
      name: "stamp",
      verifier: { type: "hmac", timestampHeader: "X-Timestamp", signedContent: "body" },
    }),
    "verifier.timestampHeader",
  );
  await refusedField(
    create({ name: "prefix", verifier: { type: "hmac", prefix: "a\nb" } }),
    "verifier.prefix",
  );
  for (const [rules, field] of [
    [[{ ...rule, where: { "a..b": 1 } }], "rules.0.where"],
    [[{ ...rule, data: "a." }], "rules.0.data"],
    [[rule, { ...rule, event: [] }], "rules.1.event"],
    [[{ ...rule, where: { n: 2 ** 60 } }], "rules.0.where"],
  ] as const) {
    await refusedField(create({ name: "rules", verifier: { type: "hmac" }, rules }), field);
  }
  await refusedField(
    create({
      name: "cond",
      verifier: { type: "hmac" },
      rules: [{ ...rule, where: { a: { gt: 1 } } }],
    }),
    "rules.0.where.a",
    /\{"in": \[.*\{"exists": true\}/,
  );
  await refusedField(
    create({ name: "rate", verifier: { type: "hmac" }, rateLimitPerSecond: 0.5 }),
    "rateLimitPerSecond",
    /must be a whole number or null/,
  );

  // What GET shows can be sent back as it is, built-in sources too.
  const made = await create({ name: "shop", verifier: { type: "hmac", prefix: "sha256=" } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  for (const name of ["shop", "xano"]) {
    const shown = await herald.api("GET", `/api/sources/${name}`);
    const back = await herald.api("PUT", `/api/sources/${name}`, {
      ...shown.body.source,
      rules: [rule],
    });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.deepEqual(back.body.source.rules, [rule]);
    assert.deepEqual(back.body.source.verifier, shown.body.source.verifier);
  }
  await refusedField(herald.api("PUT", "/api/sources/shop", { name: "shop2" }), "name");
  assertRefused(await herald.api("PUT", "/api/sources/shop", { url: "/elsewhere" }), 400);
  await refusedField(herald.api("PUT", "/api/sources/shop", { foo: 1 }), "foo");

  // A source that accepts anyone cannot be told not to while it keeps its verifier 'none'.
  const open = await create({ name: "open", verifier: { type: "none" }, allowUnverified: true });
  assert.equal(open.status, 201);
  await refusedField(
    herald.api("PUT", "/api/sources/open", { allowUnverified: false }),
    "allowUnverified",
  );
  const closed = await herald.api("PUT", "/api/sources/open", {
    allowUnverified: false,
    verifier: { type: "hmac" },
  });
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  assert.equal(closed.body.source.verifier.type, "hmac");

  // A Standard Webhooks secret no sender could sign with, at creation and in a change.
  for (const secret of ["whsec_", "whsec_!!!", "whsec_abc"]) {
    await refusedField(
      create({ name: "std-bad", verifier: { type: "standard-webhooks" }, secret }),
      "secret",
      /starts with whsec_, but what follows is not base64/,
    );
  }
  const std = await create({ name: "std", verifier: { type: "standard-webhooks" } });
  assert.equal(std.status, 201, JSON.stringify(std.body));
  await refusedField(herald.api("PUT", "/api/sources/std", { secret: "whsec_%%%%" }), "secret");
});
