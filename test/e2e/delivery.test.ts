/** End-to-end: outgoing deliveries from a real Herald to a real HTTP receiver. */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Webhook } from "standardwebhooks";
import { type RunningHerald, startHerald, waitFor } from "../support/herald.js";
import { createTestSchema, urlWithSchema } from "../support/postgres.js";
import { type Receiver, startReceiver, withReceiver } from "../support/receiver.js";
import { changedStore, tempSqliteStore } from "../support/store.js";

const FAST_RETRIES = { HERALD_RETRY_SCHEDULE: "200ms,200ms" };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Registers a webhook and returns the create response's webhook (with its secret in full). */
async function createWebhook(
  herald: RunningHerald,
  url: string,
  events: string[] = ["user.created"],
  extra: Record<string, unknown> = {},
) {
  const created = await herald.api("POST", "/api/webhooks", {
    name: "e2e receiver",
    url,
    events,
    ...extra,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.webhook as { id: string; secret: string; url: string };
}

async function trigger(herald: RunningHerald, event: string, data: Record<string, unknown> = {}) {
  const answer = await herald.api("POST", "/api/webhooks/trigger", { event, data });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as { success: true; eventId: string; deliveries: number };
}

/** Waits until the webhook's only delivery is no longer pending, and returns its detail. */
async function settledDelivery(herald: RunningHerald, webhookId: string, timeoutMs = 5000) {
  const summary = await waitFor(
    async () => {
      const list = await herald.api("GET", `/api/webhooks/${webhookId}/deliveries`);
      const first = list.body.deliveries?.[0];
      return first && first.status !== "pending" ? first : undefined;
    },
    timeoutMs,
    "the delivery to leave pending",
  );
  const detail = await herald.api("GET", `/api/webhooks/${webhookId}/deliveries/${summary.id}`);
  assert.equal(detail.status, 200);
  return detail.body.delivery;
}

/** Starts Herald and a receiver, and stops both when the test ends. */
async function setup(
  threads: string,
  t: { after(fn: () => Promise<void>): void },
  env: Record<string, string>,
  respond?: Parameters<typeof startReceiver>[0],
): Promise<{ herald: RunningHerald; receiver: Receiver }> {
  return withReceiver(t, () => startHerald({ HERALD_DELIVERY_THREADS: threads, ...env }), respond);
}

/**
 * Starts Herald and a receiver, registers one user.created webhook at `path` on the receiver,
 * triggers one event and waits for its delivery to settle.
 */
async function deliverOne(
  threads: string,
  t: { after(fn: () => Promise<void>): void },
  env: Record<string, string>,
  respond?: Parameters<typeof startReceiver>[0],
  path = "",
) {
  const { herald, receiver } = await setup(threads, t, env, respond);
  const webhook = await createWebhook(herald, `${receiver.url}${path}`);
  await trigger(herald, "user.created", { n: 1 });
  const delivery = await settledDelivery(herald, webhook.id);
  return { herald, receiver, webhook, delivery };
}

/** A receiver's answers: the first request gets `status` with `headers` and `text`, the rest 200. */
function firstAnswered(
  status: number,
  headers: Record<string, string>,
  text: string,
): Parameters<typeof startReceiver>[0] {
  return (_req, index, res) => {
    if (index === 0) res.writeHead(status, headers).end(text);
    else res.writeHead(200, { "content-type": "text/plain" }).end("OK");
  };
}

/** Every test runs with attempts sent from the main thread and from a delivery thread. */
function deliveryTests(threads: string): void {
  test("a delivery carries the JSON body, the event headers and signatures that verify with the webhook secret", async (t) => {
    const { herald, receiver } = await setup(threads, t, FAST_RETRIES);
    const webhook = await createWebhook(herald, `${receiver.url}/hooks/a`);
    assert.equal(typeof webhook.secret, "string");
    assert.notEqual(webhook.secret, "***");
    const shown = await herald.api("GET", `/api/webhooks/${webhook.id}`);
    assert.equal(shown.body.webhook.secret, "***");

    const triggered = await trigger(herald, "user.created", {
      userId: "123",
      email: "a@b.c",
      name: "Zoë 🎉",
    });
    assert.equal(triggered.deliveries, 1);
    assert.match(triggered.eventId, /^evt_/);

    const request = await waitFor(() => receiver.requests[0], 5000, "the delivery to arrive");
    const delivery = await settledDelivery(herald, webhook.id);
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 1);

    assert.equal(request.method, "POST");
    assert.equal(request.path, "/hooks/a");
    assert.match(String(request.headers["content-type"]), /^application\/json/);
    assert.equal(request.headers["x-webhook-event"], "user.created");
    assert.equal(request.headers["x-webhook-delivery"], delivery.id);
    assert.match(String(request.headers["user-agent"]), /^Herald\//);

    const body = JSON.parse(request.body);
    assert.deepEqual(Object.keys(body).sort(), ["data", "event", "timestamp"]);
    assert.equal(body.event, "user.created");
    assert.deepEqual(body.data, { userId: "123", email: "a@b.c", name: "Zoë 🎉" });
    // Signatures cover the UTF-8 bytes of the body, which Content-Length counts.
    assert.equal(Number(request.headers["content-length"]), Buffer.byteLength(request.body));
    assert.ok(!Number.isNaN(Date.parse(body.timestamp)), "timestamp is a date");
    assert.deepEqual(delivery.payload, body);

    const expectedHex = createHmac("sha256", webhook.secret).update(request.body).digest("hex");
    assert.equal(request.headers["x-webhook-signature"], expectedHex);

    const standard = {
      "webhook-id": String(request.headers["webhook-id"]),
      "webhook-timestamp": String(request.headers["webhook-timestamp"]),
      "webhook-signature": String(request.headers["webhook-signature"]),
    };
    const verifier = new Webhook(Buffer.from(webhook.secret).toString("base64"));
    assert.doesNotThrow(() => verifier.verify(request.body, standard));
    const tampered = request.body.replace('"123"', '"124"');
    assert.notEqual(tampered, request.body);
    assert.throws(() => verifier.verify(tampered, standard));
    assert.notEqual(
      createHmac("sha256", webhook.secret).update(tampered).digest("hex"),
      request.headers["x-webhook-signature"],
    );
  });

  test("only active webhooks subscribed to the triggered event receive it", async (t) => {
    const { herald, receiver } = await setup(threads, t, FAST_RETRIES);
    const created = await createWebhook(herald, `${receiver.url}/created`, ["user.created"]);
    const paused = await createWebhook(herald, `${receiver.url}/paused`, ["user.deleted"]);
    const put = await herald.api("PUT", `/api/webhooks/${paused.id}`, { active: false });
    assert.equal(put.status, 200);
    assert.equal(put.body.webhook.active, false);

    const deleted = await trigger(herald, "user.deleted", { userId: "1" });
    assert.equal(deleted.deliveries, 0);
    const login = await trigger(herald, "auth.login", { userId: "1" });
    assert.equal(login.deliveries, 0);
    await sleep(400);
    assert.equal(receiver.requests.length, 0);

    const userCreated = await trigger(herald, "user.created", { userId: "2" });
    assert.equal(userCreated.deliveries, 1);
    await waitFor(() => receiver.requests[0], 5000, "the user.created delivery");
    await sleep(300);
    assert.equal(receiver.requests.length, 1);
    assert.equal(receiver.requests[0]?.path, "/created");
    assert.equal(receiver.requests[0]?.headers["x-webhook-event"], "user.created");

    const pausedHistory = await herald.api("GET", `/api/webhooks/${paused.id}/deliveries`);
    assert.equal(pausedHistory.body.count, 0);
    const createdHistory = await herald.api("GET", `/api/webhooks/${created.id}/deliveries`);
    assert.equal(createdHistory.body.count, 1);
  });

  test("a 503 answer is retried and the delivery succeeds on the second attempt", async (t) => {
    const { receiver, delivery } = await deliverOne(
      threads,
      t,
      FAST_RETRIES,
      firstAnswered(503, { "content-type": "text/plain" }, "busy"),
    );
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 2);
    assert.equal(delivery.attemptLog.length, 2);
    assert.equal(delivery.attemptLog[0].statusCode, 503);
    assert.equal(delivery.attemptLog[0].attempt, 1);
    assert.equal(delivery.attemptLog[1].statusCode, 200);
    assert.equal(delivery.attemptLog[1].attempt, 2);
    assert.equal(receiver.requests.length, 2);
    assert.equal(
      receiver.requests[0]?.headers["x-webhook-delivery"],
      receiver.requests[1]?.headers["x-webhook-delivery"],
    );
    assert.equal(receiver.requests[0]?.body, receiver.requests[1]?.body);
  });

  test("a receiver that keeps answering 500 fails the delivery once the schedule runs out, and says why", async (t) => {
    const { delivery, webhook } = await deliverOne(
      threads,
      t,
      { HERALD_RETRY_SCHEDULE: "100ms" },
      (_req, _index, res) => res.writeHead(500, { "content-type": "text/plain" }).end("down"),
    );
    assert.equal(delivery.status, "failed");
    assert.equal(delivery.attempts, 2);
    assert.match(delivery.error, /receiver answered 500; no attempts left after 2\. /);
    assert.ok(
      delivery.error.endsWith(
        `send it again with POST /api/webhooks/${webhook.id}/deliveries/${delivery.id}/retry`,
      ),
      delivery.error,
    );
  });

  test("a 400 answer is not retried and the delivery fails after one attempt", async (t) => {
    const { herald, receiver, webhook, delivery } = await deliverOne(
      threads,
      t,
      FAST_RETRIES,
      (_req, _index, res) => res.writeHead(400, { "content-type": "text/plain" }).end("bad"),
    );
    assert.equal(delivery.status, "failed");
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.attemptLog.length, 1);
    assert.equal(delivery.attemptLog[0].statusCode, 400);
    assert.ok(
      delivery.error.includes(`POST /api/webhooks/${webhook.id}/deliveries/${delivery.id}/retry`),
      delivery.error,
    );
    await sleep(700);
    assert.equal(receiver.requests.length, 1);
    const again = await settledDelivery(herald, webhook.id);
    assert.equal(again.attempts, 1);
  });

  test("a failed delivery retried by hand is sent once more, under the same id, and its history keeps both attempts", async (t) => {
    const {
      herald,
      receiver,
      webhook,
      delivery: failed,
    } = await deliverOne(
      threads,
      t,
      FAST_RETRIES,
      firstAnswered(400, { "content-type": "text/plain" }, "bad"),
    );
    assert.equal(failed.status, "failed");

    // Retried while its webhook is inactive, it waits, and says so.
    const setActive = async (active: boolean) =>
      assert.equal(
        (await herald.api("PUT", `/api/webhooks/${webhook.id}`, { active })).status,
        200,
      );
    await setActive(false);
    const retry = await herald.api(
      "POST",
      `/api/webhooks/${webhook.id}/deliveries/${failed.id}/retry`,
    );
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.match(
      retry.body.message,
      /^Delivery queued to be sent again once its webhook is active/,
    );
    assert.equal(retry.body.delivery.id, failed.id);
    assert.equal(retry.body.delivery.status, "pending");
    assert.match(retry.body.delivery.heldBecause, /inactive/);
    await sleep(300);
    assert.equal(receiver.requests.length, 1, "sent while its webhook was inactive");
    await setActive(true);

    const delivered = await settledDelivery(herald, webhook.id);
    assert.equal(delivered.status, "success");
    assert.equal(delivered.attempts, 2);
    assert.deepEqual(
      delivered.attemptLog.map((a: { statusCode: number }) => a.statusCode),
      [400, 200],
    );
    assert.equal(receiver.requests.length, 2);
    assert.equal(
      receiver.requests[1]?.headers["x-webhook-delivery"],
      receiver.requests[0]?.headers["x-webhook-delivery"],
    );
    assert.equal(receiver.requests[1]?.body, receiver.requests[0]?.body);

    // A delivery that succeeded can be sent again too.
    const again = await herald.api(
      "POST",
      `/api/webhooks/${webhook.id}/deliveries/${failed.id}/retry`,
    );
    assert.equal(again.body.message, "Delivery queued to be sent again");
    assert.equal(again.body.delivery.heldBecause, null);
    await waitFor(async () => receiver.requests.length === 3 || undefined, 5000, "a third send");
    assert.equal(receiver.requests[2]?.body, receiver.requests[0]?.body);
  });

  test("a delivery waiting an hour for its retry, retried by hand, is sent now and its schedule goes on", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      { HERALD_RETRY_SCHEDULE: "1h,1h" },
      firstAnswered(503, { "content-type": "text/plain" }, "busy"),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });
    const waiting = await waitFor(
      async () => {
        const list = await herald.api("GET", `/api/webhooks/${webhook.id}/deliveries`);
        const first = list.body.deliveries?.[0];
        return first?.attempts === 1 ? first : undefined;
      },
      5000,
      "the first attempt",
    );
    assert.equal(waiting.status, "pending");
    // An hour, give or take its 20 % jitter.
    assert.ok(Date.parse(waiting.nextAttemptAt) > Date.now() + 45 * 60_000, waiting.nextAttemptAt);

    const retryUrl = `/api/webhooks/${webhook.id}/deliveries/${waiting.id}/retry`;
    const retry = await herald.api("POST", retryUrl);
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    const delivered = await settledDelivery(herald, webhook.id);
    assert.equal(delivered.status, "success");
    assert.equal(delivered.attempts, 2);
    assert.equal(receiver.requests.length, 2);
    assert.equal(
      receiver.requests[1]?.headers["x-webhook-delivery"],
      receiver.requests[0]?.headers["x-webhook-delivery"],
    );
  });

  test("retries of one delivery sent at once: each one accepted is sent once more, the others are 409", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      FAST_RETRIES,
      firstAnswered(400, { "content-type": "text/plain" }, "not yet"),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });
    const failed = await settledDelivery(herald, webhook.id);
    assert.equal(failed.status, "failed");
    const retryUrl = `/api/webhooks/${webhook.id}/deliveries/${failed.id}/retry`;
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => herald.api("POST", retryUrl)),
    );
    const accepted = answers.filter((answer) => answer.status === 200).length;
    assert.ok(accepted >= 1, JSON.stringify(answers.map((answer) => answer.status)));
    for (const answer of answers)
      assert.ok([200, 409].includes(answer.status), String(answer.status));
    await sleep(1000);
    assert.equal(receiver.requests.length, 1 + accepted, `${accepted} retries accepted`);
  });

  test("a 429 answer with Retry-After: 1 is retried after about one second", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      FAST_RETRIES,
      firstAnswered(429, { "retry-after": "1" }, "slow down"),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });

    await waitFor(() => receiver.requests[1], 5000, "the retry");
    const first = receiver.requests[0]!;
    const second = receiver.requests[1]!;
    const gap = second.receivedAt - first.receivedAt;
    assert.ok(gap >= 900, `retry came ${gap} ms after the 429, before Retry-After allowed`);
    assert.ok(gap < 3000, `retry came ${gap} ms after the 429, far later than asked`);

    const delivery = await settledDelivery(herald, webhook.id);
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 2);
    assert.equal(delivery.attemptLog[0].statusCode, 429);
    assert.equal(delivery.attemptLog[0].response.headers["retry-after"], "1");
    // The wait is the receiver's, not the schedule's, and the attempt's error says so.
    assert.match(
      delivery.attemptLog[0].error,
      /^receiver answered 429; next attempt in 1 s, as its Retry-After header asked$/,
    );
  });

  test("a Retry-After shorter than the schedule's wait does not shorten it", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      { HERALD_RETRY_SCHEDULE: "2500ms" },
      firstAnswered(503, { "retry-after": "0" }, "down for maintenance"),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });

    await waitFor(() => receiver.requests[1], 8000, "the retry");
    const gap = receiver.requests[1]!.receivedAt - receiver.requests[0]!.receivedAt;
    // 2.5 s less its 20 % jitter at most.
    assert.ok(gap >= 1900, `retry came ${gap} ms after the 503, before the schedule's wait`);
    const delivery = await settledDelivery(herald, webhook.id);
    assert.equal(delivery.status, "success");
    assert.match(delivery.attemptLog[0].error, /^receiver answered 503; next attempt in [23] s$/);
  });

  test("a Retry-After beyond 24 h is held to 24 h, and the attempt's error says what it asked", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      FAST_RETRIES,
      firstAnswered(503, { "retry-after": "99999999" }, "come back in three years"),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });

    const waiting = await waitFor(
      async () => {
        const list = await herald.api("GET", `/api/webhooks/${webhook.id}/deliveries`);
        const first = list.body.deliveries?.[0];
        return first?.attempts === 1 ? first : undefined;
      },
      5000,
      "the first attempt to be recorded",
    );
    assert.equal(waiting.status, "pending");
    const wait = Date.parse(waiting.nextAttemptAt) - Date.parse(waiting.lastAttemptAt);
    assert.ok(Math.abs(wait - 86_400_000) < 60_000, `next attempt ${wait} ms after the first`);
    assert.equal(
      waiting.error,
      "receiver answered 503; next attempt in 24 h, the longest Herald waits (its Retry-After header asked for 1157 days)",
    );
  });

  test("a receiver that never answers fails the attempt with a timeout", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      { HERALD_DELIVERY_TIMEOUT: "300ms", HERALD_RETRY_SCHEDULE: "none" },
      () => {
        // Never answers.
      },
    );
    const webhook = await createWebhook(herald, receiver.url);
    const started = Date.now();
    await trigger(herald, "user.created", { n: 1 });

    const delivery = await settledDelivery(herald, webhook.id);
    const elapsed = Date.now() - started;
    assert.equal(delivery.status, "failed");
    assert.equal(delivery.attempts, 1);
    assert.match(delivery.error, /timed out/);
    assert.equal(delivery.attemptLog.length, 1);
    assert.equal(delivery.attemptLog[0].statusCode, null);
    assert.match(delivery.attemptLog[0].error, /timed out/);
    assert.ok(delivery.attemptLog[0].durationMs >= 250, `gave up after ${elapsed} ms`);
    assert.ok(elapsed < 3000, `took ${elapsed} ms to give up`);
    assert.equal(receiver.requests.length, 1);
  });

  test("an answer whose body trickles on ends at the time limit, counted by its status, and is sent once", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      { HERALD_DELIVERY_TIMEOUT: "600ms", HERALD_RETRY_SCHEDULE: "100ms" },
      (_req, _index, res) => {
        // Each pause is shorter than the time limit: only a limit on the whole attempt ends it.
        res.writeHead(200, { "content-type": "text/plain" });
        const drip = setInterval(() => res.write("x"), 100);
        res.on("close", () => clearInterval(drip));
      },
    );
    const webhook = await createWebhook(herald, receiver.url);
    const started = Date.now();
    await trigger(herald, "user.created", { n: 1 });
    const delivery = await settledDelivery(herald, webhook.id);
    assert.ok(Date.now() - started < 3000, `settled after ${Date.now() - started} ms`);
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.attemptLog[0].statusCode, 200);
    assert.match(delivery.attemptLog[0].response.body, /^x+$/);
    assert.ok(delivery.attemptLog[0].durationMs < 1500, `${delivery.attemptLog[0].durationMs} ms`);
    await sleep(300);
    assert.equal(receiver.requests.length, 1);
  });

  test("an answer cut off after its status line counts by its status", async (t) => {
    const { delivery, receiver } = await deliverOne(
      threads,
      t,
      FAST_RETRIES,
      (_req, _index, res) => {
        res.writeHead(200, { "content-length": "100" });
        res.write("0123456789");
        setTimeout(() => res.destroy(), 20);
      },
    );
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.attemptLog[0].response.body, "0123456789");
    await sleep(300);
    assert.equal(receiver.requests.length, 1);
  });

  test("a redirect is not followed and fails the delivery", async (t) => {
    const { receiver, delivery } = await deliverOne(
      threads,
      t,
      FAST_RETRIES,
      (req, _index, res) => {
        if (req.path === "/start") res.writeHead(302, { location: "/elsewhere" }).end();
        else res.writeHead(200).end("OK");
      },
      "/start",
    );
    assert.equal(delivery.status, "failed");
    assert.equal(delivery.attempts, 1);
    assert.equal(delivery.attemptLog[0].statusCode, 302);
    assert.equal(delivery.attemptLog[0].response.headers.location, "/elsewhere");
    assert.match(
      delivery.error,
      /temporary redirect to \/elsewhere\. .*set the webhook's URL to the address that answers directly/,
    );
    await sleep(500);
    assert.equal(receiver.requests.length, 1);
    assert.equal(receiver.requests[0]?.path, "/start");
  });

  test("with private targets refused, a delivery to a loopback address fails at once, without a retry", async (t) => {
    const { herald, receiver, webhook, delivery } = await deliverOne(
      threads,
      t,
      { ...FAST_RETRIES, HERALD_ALLOW_PRIVATE_TARGETS: "false" },
      undefined,
      "/",
    );
    assert.match(webhook.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(delivery.status, "failed");
    assert.equal(delivery.attemptLog.length, 1);
    assert.equal(delivery.attemptLog[0].statusCode, null);
    assert.match(delivery.attemptLog[0].error, /it is a loopback address/);
    assert.match(delivery.attemptLog[0].error, /HERALD_ALLOW_PRIVATE_TARGETS/);
    await sleep(300);
    assert.equal(receiver.requests.length, 0);
    const later = await herald.api("GET", `/api/webhooks/${webhook.id}/deliveries`);
    assert.equal(later.body.deliveries[0].attempts, 1);
  });

  test("with private targets refused, a host name that resolves to loopback is blocked at connect time, without a retry", async (t) => {
    const { herald, receiver } = await setup(threads, t, {
      ...FAST_RETRIES,
      HERALD_ALLOW_PRIVATE_TARGETS: "false",
    });
    const port = new URL(receiver.url).port;
    const webhook = await createWebhook(herald, `http://localhost:${port}/`);
    await trigger(herald, "user.created", { n: 1 });

    const delivery = await settledDelivery(herald, webhook.id);
    assert.equal(delivery.status, "failed");
    assert.equal(delivery.attemptLog.length, 1);
    assert.match(delivery.attemptLog[0].error, /HERALD_ALLOW_PRIVATE_TARGETS/);
    await sleep(200);
    assert.equal(receiver.requests.length, 0);
  });

  /**
   * Herald with 8 slots and no retries (`env` adds settings), and a receiver that never answers on
   * paths starting /hang and answers 200 at once on the others.
   */
  function withHangingPaths(
    t: { after(fn: () => Promise<void>): void },
    env: Record<string, string>,
  ) {
    return setup(
      threads,
      t,
      {
        HERALD_DELIVERY_CONCURRENCY: "8",
        HERALD_RETRY_SCHEDULE: "none",
        HERALD_SHUTDOWN_GRACE: "1s",
        ...env,
      },
      (request, _index, res) => {
        if (request.path.startsWith("/hang")) return;
        res.writeHead(200, { "content-type": "text/plain" }).end("OK");
      },
    );
  }

  /**
   * Herald with 8 slots, and `hanging` webhooks whose receivers never answer beside one that
   * answers at once; triggers `triggers` events and waits for the healthy webhook to get them all
   * before the hanging attempts time out. Returns how many requests the hanging receivers got.
   */
  async function besideHangingReceivers(
    t: { after(fn: () => Promise<void>): void },
    hanging: number,
    triggers: number,
  ): Promise<number> {
    const { herald, receiver } = await withHangingPaths(t, { HERALD_DELIVERY_TIMEOUT: "3s" });
    for (let i = 0; i < hanging; i++) await createWebhook(herald, `${receiver.url}/hang${i}`);
    await createWebhook(herald, `${receiver.url}/ok`);
    for (let n = 0; n < triggers; n++) await trigger(herald, "user.created", { n });
    const healthy = () => receiver.requests.filter((r) => r.path === "/ok").length;
    await waitFor(
      () => (healthy() >= triggers ? true : undefined),
      2500,
      `the healthy webhook's ${triggers} deliveries, before the hanging attempts time out`,
    );
    return receiver.requests.length - healthy();
  }

  test("a receiver that hangs holds only its webhook's share of the slots, and other webhooks keep flowing", async (t) => {
    const hanging = await besideHangingReceivers(t, 1, 40);
    assert.ok(hanging <= 2, `the hanging webhook holds its 2 slots at most; it held ${hanging}`);
  });

  test("however many receivers hang, a healthy webhook keeps a share of the slots", async (t) => {
    // Five hanging webhooks at two slots each would take all eight.
    const hanging = await besideHangingReceivers(t, 5, 20);
    assert.ok(hanging <= 8, `the hanging webhooks hold 8 slots at most; they held ${hanging}`);
  });

  test("slots that hanging receivers took while alone leave room for a receiver that comes later", async (t) => {
    const { herald, receiver } = await withHangingPaths(t, {
      HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "8",
      HERALD_DELIVERY_TIMEOUT: "4s",
    });
    // Two hanging webhooks alone: an equal share of the seven slots slow receivers may hold
    // together is three each; the last two slots stay free.
    for (let i = 0; i < 2; i++) await createWebhook(herald, `${receiver.url}/hang${i}`);
    for (let n = 0; n < 10; n++) await trigger(herald, "user.created", { n });
    await waitFor(
      () => (receiver.requests.length >= 6 ? true : undefined),
      2000,
      "the hanging receivers to hold their slots",
    );
    await createWebhook(herald, `${receiver.url}/ok`, ["user.updated"]);
    for (let n = 0; n < 10; n++) await trigger(herald, "user.updated", { n });
    const healthy = () => receiver.requests.filter((r) => r.path === "/ok").length;
    await waitFor(
      () => (healthy() >= 10 ? true : undefined),
      2500,
      "the later webhook's 10 deliveries, before the hanging attempts time out",
    );
  });

  test("new webhooks whose receivers hang do not take the slots kept for a receiver that answers", async (t) => {
    const { herald, receiver } = await withHangingPaths(t, { HERALD_DELIVERY_TIMEOUT: "3s" });
    await createWebhook(herald, `${receiver.url}/ok`);
    await trigger(herald, "user.created", { n: 0 });
    const healthy = () => receiver.requests.filter((r) => r.path === "/ok").length;
    await waitFor(() => (healthy() >= 1 ? true : undefined), 2000, "the first delivery");
    // Twelve webhooks never tried: each would start one attempt at once, eight would fill the slots.
    for (let i = 0; i < 12; i++) await createWebhook(herald, `${receiver.url}/hang${i}`);
    for (let n = 1; n <= 20; n++) await trigger(herald, "user.created", { n });
    await waitFor(
      () => (healthy() >= 21 ? true : undefined),
      2500,
      "the healthy webhook's 20 deliveries, before the hanging attempts time out",
    );
  });

  test("a slow receiver beside many hanging ones keeps its share of the slots and goes on", async (t) => {
    const { herald, receiver } = await setup(
      threads,
      t,
      {
        HERALD_DELIVERY_CONCURRENCY: "16",
        HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "16",
        HERALD_DELIVERY_TIMEOUT: "5s",
        HERALD_RETRY_SCHEDULE: "none",
        HERALD_SHUTDOWN_GRACE: "1s",
      },
      (request, _index, res) => {
        if (request.path.startsWith("/hang")) return;
        setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end("OK"), 1200);
      },
    );
    // Seven hanging webhooks at two slots each would hold the 14 slots slow receivers may have.
    for (let i = 0; i < 7; i++) await createWebhook(herald, `${receiver.url}/hang${i}`);
    await createWebhook(herald, `${receiver.url}/slow`);
    const triggeredAt = Date.now();
    for (let n = 0; n < 10; n++) await trigger(herald, "user.created", { n });
    const slow = () => receiver.requests.filter((r) => r.path === "/slow");
    await waitFor(
      () => (slow().length >= 3 ? true : undefined),
      4500 - (Date.now() - triggeredAt),
      `three requests at the slow receiver (1.2 s each) before the hanging attempts time out`,
    );
  });

  /**
   * Herald with two slots per webhook and a receiver that answers after 100 ms; a webhook at /old
   * with 60 events queued, some of them delivered. Answers the requests that reached /old after
   * `change` was answered, beyond the two attempts in flight then.
   */
  async function changedWhileQueued(
    t: { after(fn: () => Promise<void>): void },
    change: (herald: RunningHerald, webhookId: string, url: string) => Promise<void>,
  ) {
    const { herald, receiver } = await setup(
      threads,
      t,
      { HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "2", ...FAST_RETRIES },
      (_req, _index, res) => {
        setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end("OK"), 100);
      },
    );
    const webhook = await createWebhook(herald, `${receiver.url}/old`);
    for (let n = 0; n < 60; n++) await trigger(herald, "user.created", { n });
    const atOld = () => receiver.requests.filter((r) => r.path === "/old").length;
    await waitFor(() => (atOld() >= 4 ? true : undefined), 5000, "the first deliveries");
    await change(herald, webhook.id, `${receiver.url}/new`);
    const changedAt = Date.now();
    await sleep(700);
    const late = receiver.requests.filter((r) => r.path === "/old" && r.receivedAt > changedAt);
    return { herald, receiver, webhook, late: late.length, atOld };
  }

  test("a webhook given a new URL gets its queued deliveries there: only attempts in flight reach the old one", async (t) => {
    const { herald, receiver, webhook, late, atOld } = await changedWhileQueued(
      t,
      async (herald, id, url) => {
        assert.equal((await herald.api("PUT", `/api/webhooks/${id}`, { url })).status, 200);
      },
    );
    assert.ok(late <= 2, `${late} deliveries reached the old URL after the change`);
    const atNew = () => receiver.requests.filter((r) => r.path === "/new").length;
    await waitFor(() => (atOld() + atNew() >= 60 ? true : undefined), 10_000, "every delivery");
    const list = await herald.api("GET", `/api/webhooks/${webhook.id}/deliveries?limit=100`);
    assert.equal(list.body.deliveries.length, 60);
  });

  test("a webhook made inactive or deleted stops at once: only attempts in flight go on", async (t) => {
    const paused = await changedWhileQueued(t, async (herald, id) => {
      assert.equal((await herald.api("PUT", `/api/webhooks/${id}`, { active: false })).status, 200);
    });
    assert.ok(paused.late <= 2, `${paused.late} deliveries were sent after the webhook was paused`);
    // Made active again, it gets every delivery it held.
    const id = paused.webhook.id;
    assert.equal(
      (await paused.herald.api("PUT", `/api/webhooks/${id}`, { active: true })).status,
      200,
    );
    await waitFor(() => (paused.atOld() >= 60 ? true : undefined), 10_000, "every delivery");

    const deleted = await changedWhileQueued(t, async (herald, id) => {
      assert.equal((await herald.api("DELETE", `/api/webhooks/${id}`)).status, 200);
    });
    assert.ok(
      deleted.late <= 2,
      `${deleted.late} deliveries were sent after the webhook was deleted`,
    );
  });

  test("delivery history pages newest first and the cursor walks every delivery once", async (t) => {
    const { herald, receiver } = await setup(threads, t, FAST_RETRIES);
    const webhook = await createWebhook(herald, receiver.url);
    for (let n = 0; n < 7; n++) {
      const triggered = await trigger(herald, "user.created", { n });
      assert.equal(triggered.deliveries, 1);
    }

    const ids: string[] = [];
    const ns: number[] = [];
    const pageSizes: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const list = await herald.api(
        "GET",
        `/api/webhooks/${webhook.id}/deliveries?limit=3${query}`,
      );
      assert.equal(list.status, 200, JSON.stringify(list.body));
      assert.equal(list.body.count, list.body.deliveries.length);
      pageSizes.push(list.body.deliveries.length);
      for (const d of list.body.deliveries) {
        ids.push(d.id);
        ns.push(d.payload.data.n);
      }
      cursor = list.body.nextCursor;
      if (cursor === null) break;
    }
    assert.equal(cursor, null, "the last page has a null nextCursor");
    assert.deepEqual(pageSizes, [3, 3, 1]);
    assert.equal(ids.length, 7);
    assert.equal(new Set(ids).size, 7);
    assert.deepEqual(ns, [6, 5, 4, 3, 2, 1, 0]);

    const bad = await herald.api("GET", `/api/webhooks/${webhook.id}/deliveries?cursor=nonsense`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.success, false);
  });
}

describe("sent from the main thread", () => deliveryTests("0"));
describe("sent from a delivery thread", () => deliveryTests("1"));

/** A real SQLite store whose claim and due-time queries are counted, removed when the test ends. */
function countedStore(t: { after(fn: () => void): void }) {
  const calls = { claims: 0, dueTimes: 0 };
  const store = changedStore(tempSqliteStore(t, "herald-claims-"), {
    claimDueDeliveries: (real) => (options) => {
      calls.claims++;
      return real(options);
    },
    nextDueAt: (real) => (after) => {
      calls.dueTimes++;
      return real(after);
    },
  });
  return { store, calls };
}

describe("the delivery loop", () => {
  test("an attempt that outlasts its lease (a paused process) does not claim what follows", async (t) => {
    // The clock jumps a minute while the receiver holds its answer, as a process stopped with
    // SIGSTOP and resumed sees it.
    let offset = 0;
    const clock = { now: () => Date.now() + offset };
    const { herald, receiver } = await withReceiver(
      t,
      () =>
        startHerald(
          { HERALD_DELIVERY_THREADS: "0", HERALD_DELIVERY_TIMEOUT: "2s", ...FAST_RETRIES },
          { clock },
        ),
      (_req, index, res) => {
        if (index > 0) {
          res.writeHead(200).end("OK");
          return;
        }
        offset += 60_000;
        res.writeHead(500).end("down");
      },
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });
    const delivery = await settledDelivery(herald, webhook.id);
    const first = delivery.attemptLog[0];
    assert.equal(first.statusCode, 500);
    assert.match(
      first.error,
      /^receiver answered 500; next attempt in \d+ ms\. This worker's lease on the delivery ran out/,
    );
  });

  test("an attempt record the database refuses for a moment is written again, and the delivery is not sent twice", async (t) => {
    let refusals = 2;
    const store = changedStore(tempSqliteStore(t, "herald-records-"), {
      recordAttempt:
        (real) =>
        (...args) =>
          refusals-- > 0 ? Promise.reject(new Error("database is locked")) : real(...args),
    });
    const { herald, receiver } = await withReceiver(
      t,
      () => startHerald({ HERALD_DELIVERY_THREADS: "0", HERALD_DELIVERY_TIMEOUT: "1s" }, { store }),
      (_req, _index, res) => res.writeHead(200).end("OK"),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await trigger(herald, "user.created", { n: 1 });
    const delivery = await settledDelivery(herald, webhook.id);
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 1);
    // Had the record been dropped, the lease (1 s + 10 s) would have run out and sent it again.
    await sleep(500);
    assert.equal(receiver.requests.length, 1);
    assert.ok(refusals < 0, "both refusals were met");
  });

  /** Sends 40 deliveries of about 4,000 characters each, held 100 ms each; the most open at once. */
  async function mostInFlight(t: { after(fn: () => Promise<void>): void }, budget: number) {
    let open = 0;
    let most = 0;
    const { herald, receiver } = await withReceiver(
      t,
      () =>
        startHerald(
          {
            HERALD_DELIVERY_THREADS: "0",
            HERALD_DELIVERY_CONCURRENCY: "64",
            HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "64",
          },
          { deliveryHoldBodyLength: budget },
        ),
      (_req, _index, res) => {
        open++;
        most = Math.max(most, open);
        setTimeout(() => {
          open--;
          res.writeHead(200).end("OK");
        }, 100);
      },
    );
    await createWebhook(herald, receiver.url);
    const blob = "x".repeat(4000);
    await Promise.all(
      Array.from({ length: 40 }, (_, n) => trigger(herald, "user.created", { n, blob })),
    );
    await waitFor(
      () => (receiver.requests.length >= 40 ? true : undefined),
      10_000,
      "40 deliveries",
    );
    return most;
  }

  test("holds no more payload than its budget: large bodies wait in the database", async (t) => {
    // Two bodies fit in 10,000 characters, and a claim may take one more.
    const most = await mostInFlight(t, 10_000);
    assert.ok(most <= 3, `at most 3 deliveries in flight at once; there were ${most}`);
  });

  test("with the payload budget spent, a hung receiver's waiting deliveries go back to the database and the others keep flowing", async (t) => {
    const { herald, receiver } = await withReceiver(
      t,
      () =>
        startHerald(
          {
            HERALD_DELIVERY_THREADS: "0",
            HERALD_DELIVERY_TIMEOUT: "10s",
            HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "2",
          },
          { deliveryHoldBodyLength: 30_000 },
        ),
      (req, _index, res) => {
        // The receiver at /hung never answers (until the test ends).
        if (!req.path.startsWith("/hung")) res.writeHead(200).end("OK");
      },
    );
    await createWebhook(herald, `${receiver.url}/hung`);
    await createWebhook(herald, `${receiver.url}/fine`);
    const blob = "x".repeat(9000);
    const started = Date.now();
    for (let n = 0; n < 30; n++) await trigger(herald, "user.created", { n, blob });
    await waitFor(
      () => (receiver.requests.filter((r) => r.path === "/fine").length >= 30 ? true : undefined),
      5000,
      "all 30 deliveries to the receiver that answers",
    );
    assert.ok(Date.now() - started < 5000);
    assert.equal(
      receiver.requests.filter((r) => r.path === "/hung").length,
      2,
      "the hung receiver holds its two slots",
    );
  });

  test("with room in its budget, the same load is sent all at once", async (t) => {
    const most = await mostInFlight(t, 1_000_000);
    assert.ok(most >= 20, `most of the 40 deliveries in flight at once; there were ${most}`);
  });

  test("sends the deliveries this process commits without asking the database for due work", async (t) => {
    const { store, calls } = countedStore(t);
    const { herald, receiver } = await withReceiver(t, () =>
      startHerald({ HERALD_DELIVERY_THREADS: "0" }, { store }),
    );
    await createWebhook(herald, `${receiver.url}/a`);
    await createWebhook(herald, `${receiver.url}/b`);
    // Settled first: the claim made at start, and the poll it arms.
    await sleep(100);
    const before = calls.claims;
    const started = Date.now();
    for (let n = 0; n < 60; n++) await trigger(herald, "user.created", { n });
    await waitFor(
      () => (receiver.requests.length >= 120 ? true : undefined),
      5000,
      "120 deliveries",
    );
    const polls = Math.ceil((Date.now() - started) / 1000);
    const claims = calls.claims - before;
    assert.ok(
      claims <= polls + 1,
      `at most one claim per poll (${polls}) and one more; there were ${claims} for 60 triggers`,
    );
  });

  test("a claim after a wake-up keeps the sleep it had, without reading the next due time again", async (t) => {
    const { store, calls } = countedStore(t);
    const { herald, receiver } = await withReceiver(t, () =>
      startHerald({ HERALD_DELIVERY_THREADS: "0" }, { store }),
    );
    const webhook = await createWebhook(herald, receiver.url);
    await sleep(100);
    const before = { ...calls };
    const started = Date.now();
    // Each time the webhook becomes active again, the worker is woken to claim what it held back.
    for (let i = 0; i < 20; i++) {
      for (const active of [false, true]) {
        const answer = await herald.api("PUT", `/api/webhooks/${webhook.id}`, { active });
        assert.equal(answer.status, 200);
      }
      await sleep(5);
    }
    await sleep(50);
    const polls = Math.ceil((Date.now() - started) / 1000);
    const claims = calls.claims - before.claims;
    const dueTimes = calls.dueTimes - before.dueTimes;
    assert.ok(claims >= 10, `the wake-ups led to claims; there were ${claims}`);
    assert.ok(
      dueTimes <= polls + 1,
      `the next due time is read once per poll (${polls}) and once more at most; it was read ${dueTimes} times for ${claims} claims`,
    );
  });
});

test("/metrics counts attempts by outcome, and deliveries by how the worker took them", async (t) => {
  const { herald, receiver } = await setup("0", t, FAST_RETRIES);
  const webhook = await createWebhook(herald, `${receiver.url}/counted`);
  await trigger(herald, "user.created", { n: 1 });
  assert.equal((await settledDelivery(herald, webhook.id)).status, "success");
  const response = await fetch(`${herald.url}/metrics`);
  assert.equal(response.status, 200);
  const metrics = await response.text();
  const value = (line: string) =>
    Number(new RegExp(`^${line.replace(/[{}]/g, "\\$&")} (\\d+)$`, "m").exec(metrics)?.[1]);
  assert.equal(value('herald_delivery_attempts_total{outcome="delivered"}'), 1);
  // Outcomes not met yet show at 0, so a dashboard can tell none from unknown.
  assert.equal(value('herald_delivery_attempts_total{outcome="retry"}'), 0);
  assert.equal(value('herald_delivery_attempts_total{outcome="give-up"}'), 0);
  // A process that commits a trigger hands its deliveries to its own worker; nothing to claim.
  assert.equal(value('herald_deliveries_taken_total{via="own_commit"}'), 1);
  assert.equal(value('herald_deliveries_taken_total{via="claim"}'), 0);
  assert.equal(value('herald_deliveries_taken_total{via="handed_over"}'), 0);
});

for (const store of ["SQLite", "PostgreSQL"] as const) {
  test(`${store}: an attempt cut off by a stop is not counted, even the last one: the delivery is sent after the restart`, async (t) => {
    let holding = true;
    const held: Array<() => void> = [];
    const receiver = await startReceiver((_req, _index, res) => {
      if (holding) held.push(() => res.writeHead(200).end("late"));
      else res.writeHead(200).end("OK");
    });
    t.after(async () => {
      for (const answer of held) answer();
      await receiver.close();
    });
    const dataDir = mkdtempSync(join(tmpdir(), "herald-cutoff-"));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const schema = store === "PostgreSQL" ? await createTestSchema() : undefined;
    if (schema) t.after(schema.drop);
    // One attempt in all: a cut-off counted as one would fail the delivery for good.
    const env = {
      HERALD_DATA_DIR: dataDir,
      HERALD_RETRY_SCHEDULE: "none",
      HERALD_SHUTDOWN_GRACE: "200ms",
      ...(schema ? { DATABASE_URL: urlWithSchema(schema.schema) } : {}),
    };
    const first = await startHerald(env);
    const webhook = await createWebhook(first, receiver.url);
    await trigger(first, "user.created", { n: 1 });
    await waitFor(() => held[0], 5000, "the attempt to reach the receiver");
    await first.herald.stop();

    holding = false;
    const second = await startHerald(env);
    t.after(() => second.stop());
    const delivery = await settledDelivery(second, webhook.id);
    assert.equal(delivery.status, "success");
    assert.equal(delivery.attempts, 1, JSON.stringify(delivery.attemptLog));
    assert.equal(receiver.requests.length, 2);
  });
}
