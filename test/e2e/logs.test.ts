/**
 * What Herald writes to its log: every attempt at debug level, failing receivers as warnings, and
 * refusals that anyone could repeat at will held to one line per interval.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { waitingDeliveriesMessage } from "../../src/herald.js";
import { plainWebhook } from "../support/fixtures.js";
import { startHerald, waitFor } from "../support/herald.js";
import { capturedLogger } from "../support/log-capture.js";
import { startReceiver } from "../support/receiver.js";
import { changedStore, tempSqliteStore } from "../support/store.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Herald logging into `logger`, with one user.created webhook on a receiver whose request number
 * `index` (from 0) fails with 503 when `fails(index)`; both stop when the test ends.
 */
async function heraldWithWebhook(
  t: { after(fn: () => Promise<void>): void },
  fails: (index: number) => boolean,
  env: Record<string, string>,
  overrides: Parameters<typeof startHerald>[1],
) {
  const receiver = await startReceiver((_req, index, res) =>
    res.writeHead(fails(index) ? 503 : 200).end(fails(index) ? "busy" : "OK"),
  );
  t.after(() => receiver.close());
  const herald = await startHerald(env, overrides);
  t.after(() => herald.stop());
  const created = await herald.api("POST", "/api/webhooks", {
    name: "logged",
    url: receiver.url,
    events: ["user.created"],
  });
  return { herald, receiver, id: created.body.webhook.id as string };
}

test("at debug level every attempt is logged with what came of it", async (t) => {
  const { logger, lines } = capturedLogger("debug");
  const { herald, id } = await heraldWithWebhook(
    t,
    (index) => index === 0,
    { HERALD_RETRY_SCHEDULE: "100ms" },
    { logger },
  );
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.created", data: { n: 1 } });
  const attempts = await waitFor(
    () => {
      const found = lines.filter((line) => line.level === "debug" && line.webhookId === id);
      return found.length >= 2 ? found : undefined;
    },
    5000,
    "two attempt lines",
  );
  assert.match(attempts[0]?.msg ?? "", /attempt 1: receiver answered 503; next attempt in \d+ ms/);
  assert.match(attempts[1]?.msg ?? "", /attempt 2: delivered \(receiver answered 200 in \d+ ms\)/);
});

test("a delivery that fails for good is a warning naming the webhook, its receiver's host and where its attempts are listed", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const { herald, receiver, id } = await heraldWithWebhook(
    t,
    () => true,
    { HERALD_RETRY_SCHEDULE: "none" },
    { logger },
  );
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.created", data: { n: 1 } });
  const line = await waitFor(
    () => lines.find((entry) => entry.webhookId === id && /failed for good/.test(entry.msg)),
    5000,
    "the line about the failed delivery",
  );
  assert.equal(line.level, "warn");
  assert.match(
    line.msg,
    new RegExp(
      `^Delivery del_\\S+ to webhook ${id} \\(at ${new URL(receiver.url).host}\\) failed for good: receiver answered 503; .*Every attempt is listed at GET /api/webhooks/${id}/deliveries/del_`,
    ),
  );
});

test("a failing receiver is a warning once a minute per receiving host, even when it fails on and off, and its recovery is said", async (t) => {
  const { logger, lines } = capturedLogger("info");
  // Each trigger fails first: the first three times, then once; a success follows each run.
  const failures = new Set([0, 1, 2, 4, 6, 8]);
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const { herald, receiver, id } = await heraldWithWebhook(
    t,
    (index) => failures.has(index),
    { HERALD_RETRY_SCHEDULE: "50ms,50ms,50ms" },
    { logger, clock },
  );
  const health = () =>
    lines.filter((line) => line.webhookId === id && /are failing|succeed again/.test(line.msg));
  const settle = async (n: number, requests: number) => {
    await herald.api("POST", "/api/webhooks/trigger", { event: "user.created", data: { n } });
    await waitFor(
      () => (receiver.requests.length >= requests ? true : undefined),
      5000,
      `${requests} requests`,
    );
    await sleep(100);
  };
  await settle(1, 4);
  assert.deepEqual(
    health().map((line) => line.level),
    ["warn", "info"],
    "a warning, then the recovery",
  );
  // Failing on and off within the minute: held back, and no recovery line either.
  await settle(2, 6);
  await settle(3, 8);
  assert.equal(health().length, 2, JSON.stringify(health()));
  // A minute on, the next failure is said, with how many there were since the last line.
  offset += 61_000;
  await settle(4, 10);
  const said = health();
  assert.deepEqual(
    said.map((line) => line.level),
    ["warn", "info", "warn", "info"],
  );
  assert.match(
    said[0]?.msg ?? "",
    new RegExp(
      `^Deliveries to webhook ${id} \\(at ${new URL(receiver.url).host}\\) are failing\\. Latest, delivery del_\\S+: receiver answered 503; next attempt in \\d+ ms\\. Failed deliveries are retried on schedule; GET /api/webhooks/${id}/deliveries lists them\\.`,
    ),
  );
  assert.equal(
    said[1]?.msg,
    `Deliveries to webhook ${id} (at ${new URL(receiver.url).host}) succeed again: its receiver answered 200.`,
  );
  assert.match(said[2]?.msg ?? "", /are failing \(5 failed attempts since the last line\)/);
});

test("many webhooks failing at one host are one line a minute, counting the others", async (t) => {
  const { logger, lines } = capturedLogger("info");
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const receiver = await startReceiver((_req, _index, res) => res.writeHead(503).end("down"));
  t.after(() => receiver.close());
  const herald = await startHerald({ HERALD_RETRY_SCHEDULE: "1h" }, { logger, clock });
  t.after(() => herald.stop());
  for (let i = 0; i < 5; i++) {
    const created = await herald.api("POST", "/api/webhooks", {
      name: `down-${i}`,
      url: `${receiver.url}/hook-${i}`,
      events: ["user.created"],
    });
    assert.equal(created.status, 201);
  }
  const failingLines = () => lines.filter((line) => / are failing/.test(String(line.msg)));
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.created" });
  await waitFor(() => (receiver.requests.length >= 5 ? true : undefined), 5000, "5 attempts");
  await sleep(200);
  assert.equal(failingLines().length, 1, JSON.stringify(failingLines()));
  offset += 61_000;
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.created" });
  await waitFor(() => (receiver.requests.length >= 10 ? true : undefined), 5000, "10 attempts");
  await sleep(200);
  const said = failingLines();
  assert.equal(said.length, 2, JSON.stringify(said));
  assert.match(
    String(said[1]?.msg),
    new RegExp(
      `^Deliveries to webhook wh_\\S+ \\(at ${new URL(receiver.url).host}\\), and to 4 other webhooks at the same host, are failing \\(\\d+ failed attempts since the last line\\)\\.`,
    ),
  );
});

test("forged incoming webhooks are logged once per interval, with how many and from where", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const herald = await startHerald({ HERALD_INCOMING_SECRET_XANO: "xano-secret" }, { logger });
  t.after(() => herald.stop());
  const send = (signature: string) =>
    fetch(`${herald.url}/api/incoming-webhooks/xano`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-webhook-signature": signature },
      body: '{"event":"record.created"}',
    });
  for (let i = 0; i < 20; i++) assert.equal((await send("00")).status, 401);
  const refused = lines.filter((line) => String(line.msg).startsWith("Refused"));
  assert.equal(refused.length, 1, JSON.stringify(refused));
  assert.equal(refused[0]?.from, "127.0.0.1");
  assert.match(String(refused[0]?.msg), /at most every 10 s/);
  const good = createHmac("sha256", "xano-secret")
    .update('{"event":"record.created"}')
    .digest("hex");
  assert.equal((await send(good)).status, 200, "a signed webhook is still taken");
});

test("every kind of refused incoming webhook is a warning, once per interval per source and kind, with a count; unknown sources share one line", async (t) => {
  const { logger, lines } = capturedLogger("info");
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const herald = await startHerald(
    { HERALD_INCOMING_SECRET_XANO: "xano-secret" },
    { logger, clock },
  );
  t.after(() => herald.stop());
  const created = await herald.api("POST", "/api/sources", {
    name: "strict",
    verifier: { type: "hmac" },
    maxBodyBytes: 64,
    rateLimitPerSecond: 1,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const secret: string = created.body.source.secret;
  const send = (source: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${herald.url}/api/incoming-webhooks/${source}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-webhook-signature": createHmac("sha256", source === "xano" ? "xano-secret" : secret)
          .update(body)
          .digest("hex"),
        ...headers,
      },
      body,
    }).then((response) => response.status);
  const kinds: Array<[number, string, () => Promise<number>]> = [
    [400, "malformed_json", () => send("xano", "{not json")],
    [415, "unsupported_media_type", () => send("xano", "<p/>", { "content-type": "text/html" })],
    [413, "payload_too_large", () => send("strict", JSON.stringify({ pad: "x".repeat(100) }))],
  ];
  for (const [status, , refuse] of kinds) {
    for (let i = 0; i < 3; i++) assert.equal(await refuse(), status);
  }
  for (let i = 0; i < 3; i++) assert.equal(await send(`nobody-${i}`, "{}"), 404);
  const statuses = [];
  for (let i = 0; i < 5; i++) statuses.push(await send("strict", JSON.stringify({ n: i })));
  assert.ok(statuses.includes(429), JSON.stringify(statuses));
  const refused = () => lines.filter((line) => String(line.msg).startsWith("Refused"));
  assert.equal(refused().length, 5, JSON.stringify(refused()));
  assert.ok(refused().every((line) => line.level === "warn" && line.from === "127.0.0.1"));
  const said = (reason: string) => refused().find((line) => line.reason === reason);
  assert.match(
    said("malformed_json")?.msg ?? "",
    /^Refused an incoming webhook for 'xano' \(the latest from 127\.0\.0\.1\) with 400: The request body is not valid JSON \(.*\)\. Send a JSON body\. Refusals for the same reason are logged at most every 10 s\.$/,
  );
  assert.match(
    said("unsupported_media_type")?.msg ?? "",
    /with 415: Content-Type 'text\/html' is not accepted\. Send /,
  );
  assert.match(
    said("payload_too_large")?.msg ?? "",
    /for 'strict' .*with 413: .*Send a smaller body/,
  );
  assert.match(
    said("rate_limited")?.msg ?? "",
    /for 'strict' .*with 429: Source 'strict' accepts 1 request per second/,
  );
  assert.match(
    said("unknown_service")?.msg ?? "",
    /^Refused an incoming webhook for a source that does not exist \(the latest for 'nobody-0', from 127\.0\.0\.1\) with 404: Unknown incoming source 'nobody-0'.* Refusals for unknown sources are logged at most every 10 s\.$/,
  );
  // Once the interval is over, what each burst held back is said, with how many, without waiting
  // for another refusal of its kind.
  offset += 11_000;
  const heldBack = (reason: string) =>
    refused()
      .slice(5)
      .find((line) => line.reason === reason);
  await waitFor(
    () => (heldBack("malformed_json") && heldBack("unknown_service") ? true : undefined),
    3000,
    "the lines for what the bursts held back",
  );
  assert.match(
    heldBack("malformed_json")?.msg ?? "",
    /^Refused 2 incoming webhooks for 'xano' \(the latest from 127\.0\.0\.1\) with 400: /,
  );
  assert.match(
    heldBack("unknown_service")?.msg ?? "",
    /^Refused 2 incoming webhooks for a source that does not exist \(the latest for 'nobody-2'/,
  );
  assert.equal(heldBack("payload_too_large")?.refused, 2);
  const afterFlush = refused().length;
  // A refusal after the next interval is said at once, as the first of a new run.
  offset += 11_000;
  assert.equal(await send("xano", "{}", { "content-encoding": "gzip" }), 415);
  assert.equal(refused().length, afterFlush + 1, JSON.stringify(refused().slice(afterFlush)));
  assert.match(
    refused().at(-1)?.msg ?? "",
    /^Refused an incoming webhook for 'xano' .*with 415: The request body is encoded \(Content-Encoding: gzip\)/,
  );
});

test("an incoming webhook whose sender leaves before its body arrives is logged as such, with where from", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const herald = await startHerald({ HERALD_INCOMING_SECRET_XANO: "xano-secret" }, { logger });
  t.after(() => herald.stop());
  const { hostname, port } = new URL(herald.url);
  await new Promise<void>((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        'POST /api/incoming-webhooks/xano HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"event":',
      );
      setTimeout(() => socket.destroy(), 100);
    });
    socket.on("close", () => resolve());
  });
  const line = await waitFor(
    () => lines.find((entry) => String(entry.msg).startsWith("Refused")),
    5000,
    "the refusal's line",
  );
  assert.equal(line.reason, "incomplete_body");
  assert.match(
    String(line.msg),
    /^Refused an incoming webhook for 'xano' \(the latest from (127\.0\.0\.1|a sender that has disconnected)\) with 408: The sender did not send its whole body: it disconnected, or took longer than HERALD_REQUEST_TIMEOUT\./,
  );
});

test("a blank incoming secret is a warning at start; unset ones are one line of information", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const herald = await startHerald({ HERALD_INCOMING_SECRET_XANO: "   " }, { logger });
  t.after(() => herald.stop());
  const blank = lines.find((line) => line.source === "xano");
  assert.equal(blank?.level, "warn");
  assert.equal(
    blank?.msg,
    "Incoming webhooks for 'xano' will be refused: HERALD_INCOMING_SECRET_XANO is blank. Set it to the secret the sender signs with.",
  );
  const unset = lines.filter((line) => /will be refused until/.test(String(line.msg)));
  assert.equal(unset.length, 1, JSON.stringify(unset));
  assert.equal(unset[0]?.level, "info");
  assert.equal(
    unset[0]?.msg,
    "Incoming webhooks for 'stripe' and 'custom' will be refused until HERALD_INCOMING_SECRET_STRIPE and HERALD_INCOMING_SECRET_CUSTOM are set (only needed for a sender that posts to those sources).",
  );
});

test("a database the worker cannot read is one error line for a run of failures, and its return is said", async (t) => {
  const { logger, lines } = capturedLogger("info");
  let down = true;
  let failedClaims = 0;
  const store = changedStore(tempSqliteStore(t, "herald-logs-"), {
    claimDueDeliveries: (real) => (options) => {
      if (!down) return real(options);
      failedClaims++;
      return Promise.reject(
        Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" }),
      );
    },
  });
  const herald = await startHerald({}, { logger, store });
  t.after(() => herald.stop());
  // The worker tries again every second.
  await waitFor(() => (failedClaims >= 3 ? true : undefined), 5000, "three failed claims");
  down = false;
  const back = await waitFor(
    () => lines.find((line) => String(line.msg).startsWith("Reading due deliveries")),
    3000,
    "the line that says claims work again",
  );
  const failures = lines.filter((line) =>
    String(line.msg).startsWith("Could not read due deliveries"),
  );
  assert.equal(failures.length, 1, JSON.stringify(failures));
  assert.equal(failures[0]?.level, "error");
  assert.match(
    String(failures[0]?.msg),
    /locked by another program \(SQLITE_BUSY\): check that no other process writes to it\. The database said: database is locked\. This line repeats at most every 30 s/,
  );
  assert.match(String(back.msg), new RegExp(`works again, after ${failedClaims} failed tries\\.$`));
});

test("at start, deliveries left waiting in the database are said, due ones and retries apart", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const store = tempSqliteStore(t, "herald-logs-");
  // Two due deliveries to an unreachable receiver, and one retry due in an hour.
  let started = false;
  t.after(async () => {
    if (!started) await store.close();
  });
  await store.insertWebhook({ ...plainWebhook("wh_waiting"), url: "http://127.0.0.1:9/" });
  for (const name of ["a", "b", "c"]) {
    await store.enqueueEvent(
      { id: `evt_${name}`, type: "user.created", body: "{}", createdAt: 1 },
      (active) => [...active],
      () => `del_${name}`,
    );
  }
  const [retry] = await store.claimDueDeliveries({
    now: 1,
    limit: 1,
    workerId: "before",
    leaseUntil: 2,
  });
  assert.ok(retry);
  await store.recordAttempt(
    {
      deliveryId: retry.id,
      status: "pending",
      attempts: 1,
      nextAttemptAt: Date.now() + 3_600_000,
      attempt: {
        deliveryId: retry.id,
        attempt: 1,
        startedAt: 1,
        durationMs: 1,
        statusCode: 503,
        error: "receiver answered 503",
        responseHeaders: null,
        responseBody: null,
      },
    },
    "before",
  );
  started = true;
  const herald = await startHerald({}, { logger, store });
  t.after(() => herald.stop());
  const line = await waitFor(
    () => lines.find((entry) => String(entry.msg).includes("waiting in the database")),
    3000,
    "the line about waiting deliveries",
  );
  assert.equal(
    line.msg,
    "2 deliveries were waiting in the database to be sent; Herald is sending them now. 1 retry waits in the database for its time.",
  );
  assert.deepEqual([line.due, line.later], [2, 1]);
});

test("deliveries leased to a worker that no longer runs are said apart from those sent now", () => {
  assert.equal(
    waitingDeliveriesMessage(2, 1, 3),
    "2 deliveries were waiting in the database to be sent; Herald is sending them now. 3 deliveries are leased to a worker that no longer runs: they are sent again within about 10 s. 1 retry waits in the database for its time.",
  );
  assert.match(
    String(waitingDeliveriesMessage(0, 0, 1)),
    /^1 delivery is leased .*: it is sent again within about 10 s\.$/,
  );
  assert.equal(waitingDeliveriesMessage(0, 0, 0), undefined);
});

test("a start with nothing waiting says nothing about waiting deliveries; the ready line names the database", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const herald = await startHerald({}, { logger });
  t.after(() => herald.stop());
  const ready = await waitFor(
    () => lines.find((entry) => String(entry.msg).startsWith("Herald is ready")),
    3000,
    "the ready line",
  );
  assert.match(
    String(ready.msg),
    new RegExp(
      `; database: SQLite file ${herald.dataDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/herald\\.db\\.$`,
    ),
  );
  await sleep(200);
  assert.equal(lines.filter((entry) => String(entry.msg).includes("waiting")).length, 0);
});

test("a stop that cuts off attempts still waiting for their receivers says so, not that it stopped cleanly", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const waiting: Array<() => void> = [];
  // The receiver holds every request until the test ends.
  const receiver = await startReceiver((_req, _index, res) => {
    waiting.push(() => res.writeHead(200).end("late"));
  });
  t.after(async () => {
    for (const answer of waiting) answer();
    await receiver.close();
  });
  const herald = await startHerald({ HERALD_SHUTDOWN_GRACE: "200ms" }, { logger });
  const created = await herald.api("POST", "/api/webhooks", {
    name: "held",
    url: receiver.url,
    events: ["user.created"],
  });
  assert.equal(created.status, 201);
  assert.equal(
    (await herald.api("POST", "/api/webhooks/trigger", { event: "user.created" })).status,
    200,
  );
  await waitFor(
    () => (waiting.length > 0 ? true : undefined),
    5000,
    "the attempt reached the receiver",
  );
  await herald.stop();
  assert.ok(
    lines.some((entry) =>
      /^Herald is stopping: no new requests are taken; it waits up to 0\.2 s \(HERALD_SHUTDOWN_GRACE\) for the 1 attempt in flight to finish\.$/.test(
        String(entry.msg),
      ),
    ),
    JSON.stringify(lines),
  );
  const line = lines.find((entry) => String(entry.msg).includes("cutting off"));
  assert.ok(line, "no line about attempts cut off");
  assert.equal(line.level, "warn");
  assert.equal(line.cutOff, 1);
  assert.match(
    String(line.msg),
    /cutting off 1 attempt whose receiver had not finished answering\. An attempt cut off before its receiver's status came is not counted: the delivery stays pending and is sent again at once/,
  );
  // What is left to send is said at the stop, not only at the next start.
  assert.match(
    String(line.msg),
    / 1 delivery waits in the database \(0 of them retries waiting for their time\): the running workers, or the next to start, send it\.$/,
  );
  assert.ok(!lines.some((entry) => String(entry.msg).includes("stopped cleanly")));
  // The receiver did nothing wrong: the cut-off attempt is not reported as its failure.
  assert.ok(
    !lines.some((entry) => String(entry.msg).includes("are failing")),
    JSON.stringify(lines),
  );
});

test("once stopping, Herald sends no retry that falls due while its API drains", async (t) => {
  const receiver = await startReceiver((_req, _index, res) => res.writeHead(503).end("busy"));
  t.after(() => receiver.close());
  const herald = await startHerald({ HERALD_RETRY_SCHEDULE: "300ms,300ms" });
  let stopping: Promise<void> | undefined;
  t.after(() => stopping ?? herald.stop());
  const created = await herald.api("POST", "/api/webhooks", {
    name: "busy",
    url: receiver.url,
    events: ["user.created"],
  });
  assert.equal(created.status, 201);
  await herald.api("POST", "/api/webhooks/trigger", { event: "user.created" });
  await waitFor(() => receiver.requests[0], 5000, "the first attempt");
  await sleep(50);
  stopping = herald.stop();
  // Requests arriving while the API drains keep its port open for up to a second, long after
  // the retry (300 ms ± 20 %) falls due.
  const until = Date.now() + 900;
  while (Date.now() < until) {
    await fetch(`${herald.url}/healthz`).catch(() => undefined);
    await sleep(30);
  }
  await stopping;
  assert.equal(receiver.requests.length, 1, "a retry was sent after the stop began");
});

test("refused API requests are a warning once a minute per reason, saying why, never with the key sent", async (t) => {
  const { logger, lines } = capturedLogger("info");
  const herald = await startHerald({}, { logger });
  t.after(() => herald.stop());
  const get = (headers: Record<string, string>) =>
    fetch(`${herald.url}/api/webhooks?page=1`, { headers }).then((answer) => answer.status);
  for (let i = 0; i < 3; i++) {
    assert.equal(await get({ authorization: "Bearer guessed-key-123" }), 401);
  }
  assert.equal(await get({}), 401);
  const refused = lines.filter((line) => String(line.msg).startsWith("Refused an API request"));
  assert.equal(refused.length, 2, JSON.stringify(refused));
  assert.ok(refused.every((line) => line.level === "warn" && line.from === "127.0.0.1"));
  assert.match(
    String(refused[0]?.msg),
    /^Refused an API request \(GET \/api\/webhooks\) from 127\.0\.0\.1 with 401: its API key is not the one Herald uses\. A client of yours needs HERALD_API_KEY/,
  );
  assert.match(String(refused[1]?.msg), /with 401: it sent no API key\./);
  assert.ok(!JSON.stringify(lines).includes("guessed-key-123"));
});

test("with HERALD_API_KEY set, a key saved earlier in the data directory is said not to be accepted", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-key-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  writeFileSync(join(dataDir, "api-key"), "hk_saved_earlier_key_123456\n", { mode: 0o600 });
  const { logger, lines } = capturedLogger("info");
  const herald = await startHerald({ HERALD_DATA_DIR: dataDir }, { logger });
  t.after(() => herald.stop());
  const line = lines.find((entry) => String(entry.msg).startsWith("Using HERALD_API_KEY"));
  assert.equal(
    line?.msg,
    `Using HERALD_API_KEY; the key saved earlier in ${join(dataDir, "api-key")} is not accepted while it is set.`,
  );
  assert.ok(!JSON.stringify(lines).includes("hk_saved_earlier_key_123456"));
});
