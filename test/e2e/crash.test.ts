/**
 * End-to-end durability: Herald runs as a child process, is killed with SIGKILL while events are
 * being triggered (or incoming webhooks received), and is started again on the same data, on SQLite
 * and on PostgreSQL. Every request answered 200 must still reach the receiver.
 */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Agent, request } from "undici";
import { TEST_API_KEY } from "../support/herald.js";
import { createTestSchema, urlWithSchema } from "../support/postgres.js";
import { freePort, type HeraldProcess, spawnHerald } from "../support/process.js";
import { type Receiver, startReceiver } from "../support/receiver.js";

const TOTAL = 2000;
const CONCURRENCY = 16;
const KILL_AFTER_ACKS = 800;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const children: HeraldProcess[] = [];
const dirs: string[] = [];
const receivers: Receiver[] = [];
const agents: Agent[] = [];

const schemaDrops: Array<() => Promise<void>> = [];

after(async () => {
  for (const child of children) await child.kill();
  for (const receiver of receivers) await receiver.close();
  for (const agent of agents) await agent.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  for (const drop of schemaDrops) await drop();
});

/** The stores the kill tests run on: SQLite in the data dir, and PostgreSQL in a fresh schema. */
const STORES = ["SQLite", "PostgreSQL"] as const;

/** The settings that put a child on `store`. */
async function storeEnv(store: (typeof STORES)[number]): Promise<Record<string, string>> {
  if (store === "SQLite") return {};
  const { schema, drop } = await createTestSchema();
  schemaDrops.push(drop);
  return { DATABASE_URL: urlWithSchema(schema) };
}

/** Starts Herald as a child process on `port` with the data in `dataDir`. */
async function startChild(
  port: number,
  dataDir: string,
  env: Record<string, string> = {},
): Promise<HeraldProcess> {
  const child = await spawnHerald({
    PORT: String(port),
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    LOG_LEVEL: "warn",
    HERALD_RETRY_SCHEDULE: "100ms,200ms,500ms,1s,1s,1s,1s",
    ...env,
  });
  children.push(child);
  return child;
}

/** What a run of requests cut by a SIGKILL saw. */
interface KilledRun {
  /** n → the id the answer gave, for every request answered as accepted. */
  acknowledged: Map<number, string>;
  /** n → error code, for every request that got no answer. */
  connectionFailures: Map<number, string>;
  /** The process started again after the kill. */
  second: HeraldProcess;
}

/**
 * Sends requests 0…TOTAL-1 from CONCURRENCY clients; once KILL_AFTER_ACKS are acknowledged, calls
 * `crash` (which kills Herald and starts it again) and goes on against the new process.
 * `acknowledge` returns the id an answer acknowledges, or undefined when it is not an acceptance.
 */
async function sendThroughKill(
  send: (n: number) => Promise<{ status: number; text: string }>,
  acknowledge: (status: number, text: string) => string | undefined,
  crash: (acknowledgedSoFar: ReadonlyMap<number, string>) => Promise<HeraldProcess>,
): Promise<KilledRun> {
  const acknowledged = new Map<number, string>();
  const connectionFailures = new Map<number, string>();
  const failuresBeforeKill: number[] = [];
  const otherAnswers: Array<{ n: number; status: number; body: string }> = [];
  let restarted: Promise<HeraldProcess> | undefined;
  let next = 0;
  async function client(): Promise<void> {
    while (next < TOTAL) {
      const n = next++;
      let answer: { status: number; text: string };
      try {
        answer = await send(n);
      } catch (error) {
        const err = error as { code?: string; message?: string };
        connectionFailures.set(n, err.code ?? err.message ?? String(error));
        if (!restarted) failuresBeforeKill.push(n);
        else await restarted;
        continue;
      }
      const id = acknowledge(answer.status, answer.text);
      if (id === undefined) {
        otherAnswers.push({ n, status: answer.status, body: answer.text });
        continue;
      }
      acknowledged.set(n, id);
      if (acknowledged.size >= KILL_AFTER_ACKS && !restarted) restarted = crash(acknowledged);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, () => client()));
  assert.ok(restarted, "the child was killed midway");
  const second = await restarted;

  assert.deepEqual(failuresBeforeKill, [], "no request failed before the kill");
  assert.deepEqual(otherAnswers, [], "every answered request was accepted");
  assert.ok(connectionFailures.size > 0, "the kill cut some requests off mid-request");
  for (const n of connectionFailures.keys()) {
    assert.ok(!acknowledged.has(n), `failed request ${n} is not counted as acknowledged`);
  }
  assert.equal(acknowledged.size + connectionFailures.size, TOTAL);
  assert.ok(acknowledged.size > KILL_AFTER_ACKS, "requests were acknowledged after the restart");
  return { acknowledged, connectionFailures, second };
}

/** Waits until every acknowledged n has reached the receiver; returns those that never did. */
async function undelivered(acknowledged: Map<number, string>, received: Set<number>) {
  const deadline = Date.now() + 40_000;
  for (;;) {
    const missing = [...acknowledged.keys()].filter((n) => !received.has(n));
    if (missing.length === 0 || Date.now() > deadline) return missing;
    await sleep(100);
  }
}

/** A receiver that records each delivery's data.n, answering slowly until `fast()` is called. */
async function countingReceiver() {
  const received = new Set<number>();
  // Before the kill the receiver answers slowly, so a backlog of pending deliveries builds up
  // and has to survive the crash.
  let slow = true;
  const receiver = await startReceiver((req, _index, res) => {
    try {
      const n = (JSON.parse(req.body) as { data?: { n?: unknown } }).data?.n;
      if (typeof n === "number") received.add(n);
    } catch {
      // A body cut short by the crash is not a delivery.
    }
    const answer = () => {
      if (!res.destroyed) res.writeHead(200, { "content-type": "text/plain" }).end("OK");
    };
    if (slow) setTimeout(answer, 200);
    else answer();
  });
  receivers.push(receiver);
  const fast = () => {
    slow = false;
  };
  return { receiver, received, fast };
}

async function registerWebhook(base: string, url: string): Promise<void> {
  const registered = await fetch(`${base}/api/webhooks`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "crash receiver", url, events: ["user.created"] }),
  });
  assert.equal(registered.status, 201);
}

function newAgent(): Agent {
  const agent = new Agent({ connections: CONCURRENCY * 2 });
  agents.push(agent);
  return agent;
}

/** Posts `body` to `url` through `agent`, as one of the clients of a killed run. */
async function postThrough(
  agent: Agent,
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  const response = await request(url, {
    method: "POST",
    dispatcher: agent,
    headers,
    body,
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  return { status: response.statusCode, text: await response.body.text() };
}

for (const store of STORES) {
  test(`${store}: every trigger acknowledged before a SIGKILL is delivered after a restart on the same data`, {
    timeout: 60_000,
  }, async (t) => {
    const { receiver, received, fast } = await countingReceiver();
    const dataDir = mkdtempSync(join(tmpdir(), "herald-crash-"));
    dirs.push(dataDir);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = await storeEnv(store);
    const first = await startChild(port, dataDir, env);
    await registerWebhook(base, receiver.url);
    const agent = newAgent();

    let undeliveredAtKill: number[] = [];
    const headers = { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" };
    const run = await sendThroughKill(
      (n) =>
        postThrough(
          agent,
          `${base}/api/webhooks/trigger`,
          headers,
          JSON.stringify({ event: "user.created", data: { n } }),
        ),
      (status, text) => {
        if (status !== 200) return undefined;
        const answer = JSON.parse(text) as { eventId?: unknown; deliveries?: unknown };
        return typeof answer.eventId === "string" && answer.deliveries === 1
          ? answer.eventId
          : undefined;
      },
      async (acknowledgedSoFar) => {
        first.process.kill("SIGKILL");
        undeliveredAtKill = [...acknowledgedSoFar.keys()].filter((n) => !received.has(n));
        fast();
        const exit = await first.exited;
        assert.equal(exit.signal, "SIGKILL");
        return startChild(port, dataDir, env);
      },
    );
    const { acknowledged, connectionFailures, second } = run;
    assert.ok(undeliveredAtKill.length > 0, "the kill left acknowledged events undelivered");

    const missing = await undelivered(acknowledged, received);
    assert.deepEqual(
      missing.slice(0, 20),
      [],
      `${missing.length} acknowledged events never reached the receiver, e.g. ${missing
        .slice(0, 5)
        .map((n) => `${n} (${acknowledged.get(n)})`)
        .join(", ")}\n${second.output()}`,
    );

    t.diagnostic(
      `acknowledged ${acknowledged.size} (${undeliveredAtKill.length} not yet delivered at the kill), cut off ${connectionFailures.size} (${[
        ...new Set(connectionFailures.values()),
      ].join(", ")}), deliveries received ${receiver.requests.length}`,
    );

    second.process.kill("SIGTERM");
    const exit = await second.exited;
    assert.equal(exit.code, 0, `Herald did not stop cleanly on SIGTERM:\n${second.output()}`);
  });

  test(`${store}: every incoming webhook acknowledged before a SIGKILL is stored, routed and delivered after a restart, and its replay stays a duplicate`, {
    timeout: 60_000,
  }, async (t) => {
    const secret = "crash-incoming-secret";
    const { receiver, received, fast } = await countingReceiver();
    const dataDir = mkdtempSync(join(tmpdir(), "herald-crash-in-"));
    dirs.push(dataDir);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = { ...(await storeEnv(store)), HERALD_INCOMING_SECRET_XANO: secret };
    const first = await startChild(port, dataDir, env);
    await registerWebhook(base, receiver.url);
    const routed = await fetch(`${base}/api/sources/xano`, {
      method: "PUT",
      headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({
        rules: [{ event: "record.created", emit: "user.created", data: "data" }],
      }),
    });
    assert.equal(routed.status, 200);
    const agent = newAgent();

    const bodyOf = (n: number) => JSON.stringify({ event: "record.created", data: { n } });
    const post = (n: number) =>
      postThrough(
        agent,
        `${base}/api/incoming-webhooks/xano`,
        {
          "content-type": "application/json",
          "x-webhook-delivery": `crash-${n}`,
          "x-webhook-signature": createHmac("sha256", secret).update(bodyOf(n)).digest("hex"),
        },
        bodyOf(n),
      );
    type Ack = { eventId?: unknown; status?: unknown; duplicate?: unknown };
    const run = await sendThroughKill(
      post,
      (status, text) => {
        if (status !== 200) return undefined;
        const answer = JSON.parse(text) as Ack;
        // A request cut off by the kill may have been stored: sent again after the restart it is a
        // duplicate, answered with the first one's id.
        return typeof answer.eventId === "string" ? answer.eventId : undefined;
      },
      async () => {
        first.process.kill("SIGKILL");
        fast();
        await first.exited;
        return startChild(port, dataDir, env);
      },
    );
    const { acknowledged, second } = run;

    const missing = await undelivered(acknowledged, received);
    assert.deepEqual(
      missing.slice(0, 20),
      [],
      `${missing.length} acknowledged webhooks never reached the receiver`,
    );

    const headers = { authorization: `Bearer ${TEST_API_KEY}` };
    for (const [n, eventId] of acknowledged) {
      const stored = await fetch(`${base}/api/incoming-events/${eventId}`, { headers });
      assert.equal(stored.status, 200, `incoming webhook ${n} (${eventId}) was not stored`);
      const { event } = (await stored.json()) as { event: { status: string } };
      assert.equal(event.status, "routed", `incoming webhook ${n}`);
    }
    // The sender retries what was acknowledged just before the kill: each is a duplicate of the
    // stored one, not routed again.
    const lastBeforeKill = [...acknowledged.keys()].slice(KILL_AFTER_ACKS - 20, KILL_AFTER_ACKS);
    const deliveredBefore = receiver.requests.length;
    for (const n of lastBeforeKill) {
      const again = await post(n);
      assert.equal(again.status, 200);
      const answer = JSON.parse(again.text) as Ack;
      assert.equal(answer.duplicate, true, `replay of ${n}`);
      assert.equal(answer.eventId, acknowledged.get(n));
    }
    await sleep(300);
    assert.equal(receiver.requests.length, deliveredBefore, "a replay was routed again");
    t.diagnostic(`acknowledged ${acknowledged.size}, cut off ${run.connectionFailures.size}`);
    await second.stop();
  });
}

test("SIGTERM ends within HERALD_SHUTDOWN_GRACE even with a receiver that never answers and a client that stopped sending; the cut-off attempt is sent again after a restart", {
  timeout: 60_000,
}, async () => {
  let answering = false;
  const receiver = await startReceiver((_req, _index, res) => {
    if (answering) res.writeHead(200, { "content-type": "text/plain" }).end("OK");
  });
  receivers.push(receiver);
  const dataDir = mkdtempSync(join(tmpdir(), "herald-grace-"));
  dirs.push(dataDir);
  const port = await freePort();
  const env = {
    PORT: String(port),
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    LOG_LEVEL: "warn",
    HERALD_DELIVERY_TIMEOUT: "60s",
    HERALD_SHUTDOWN_GRACE: "1s",
  };
  const first = await spawnHerald(env);
  children.push(first);
  const base = `http://127.0.0.1:${port}`;
  const headers = { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" };
  const created = await fetch(`${base}/api/webhooks`, {
    method: "POST",
    headers,
    body: JSON.stringify({ name: "grace", url: receiver.url, events: ["user.created"] }),
  });
  assert.equal(created.status, 201);
  const webhookId = ((await created.json()) as { webhook: { id: string } }).webhook.id;
  const triggered = await fetch(`${base}/api/webhooks/trigger`, {
    method: "POST",
    headers,
    body: JSON.stringify({ event: "user.created", data: { n: 1 } }),
  });
  assert.equal(triggered.status, 200);
  while (receiver.requests.length === 0) await sleep(20);
  // A client that sends half its body and then nothing.
  const stalled = connect(port, "127.0.0.1");
  await new Promise((resolve) => stalled.once("connect", resolve));
  stalled.write(
    `POST /api/webhooks/trigger HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nAuthorization: Bearer ${TEST_API_KEY}\r\n\r\n{"event":`,
  );
  stalled.on("error", () => {});
  await sleep(100);

  const stopping = Date.now();
  first.process.kill("SIGTERM");
  const exit = await first.exited;
  const took = Date.now() - stopping;
  stalled.destroy();
  assert.equal(exit.code, 0, first.output());
  assert.ok(took < 6_000, `stopping took ${took} ms with a 1 s grace`);

  answering = true;
  const second = await spawnHerald(env);
  children.push(second);
  let status = "";
  const deadline = Date.now() + 15_000;
  while (status !== "success" && Date.now() < deadline) {
    await sleep(100);
    const list = await fetch(`${base}/api/webhooks/${webhookId}/deliveries`, { headers });
    status = ((await list.json()) as { deliveries: Array<{ status: string }> }).deliveries[0]
      ?.status as string;
  }
  assert.equal(status, "success", "the cut-off delivery was sent again after the restart");
});

test("deliveries a paused process held past its lease margin are given back and sent at once, not left until their lease runs out", {
  timeout: 60_000,
}, async () => {
  // One attempt at a time, 200 ms each: most deliveries wait in the process's queue.
  const receiver = await startReceiver((_req, _index, res) => {
    setTimeout(() => res.writeHead(200, { "content-type": "text/plain" }).end("OK"), 200);
  });
  receivers.push(receiver);
  const dataDir = mkdtempSync(join(tmpdir(), "herald-turn-"));
  dirs.push(dataDir);
  const herald = await spawnHerald({
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "1",
    LOG_LEVEL: "warn",
  });
  children.push(herald);
  const headers = { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" };
  const created = await fetch(`${herald.url}/api/webhooks`, {
    method: "POST",
    headers,
    body: JSON.stringify({ name: "one at a time", url: receiver.url, events: ["user.created"] }),
  });
  assert.equal(created.status, 201);
  const total = 20;
  await Promise.all(
    Array.from({ length: total }, (_, n) =>
      fetch(`${herald.url}/api/webhooks/trigger`, {
        method: "POST",
        headers,
        body: JSON.stringify({ event: "user.created", data: { n } }),
      }).then((answer) => assert.equal(answer.status, 200)),
    ),
  );
  while (receiver.requests.length === 0) await sleep(10);
  // Paused past the lease's margin (10 s beyond the 15 s delivery timeout), not past the lease.
  herald.process.kill("SIGSTOP");
  await sleep(11_000);
  herald.process.kill("SIGCONT");
  const resumed = Date.now();
  const sent = () => new Set(receiver.requests.map((r) => r.headers["x-webhook-delivery"])).size;
  while (sent() < total && Date.now() < resumed + 30_000) await sleep(50);
  assert.equal(sent(), total);
  const took = Date.now() - resumed;
  assert.ok(took < 10_000, `the held deliveries were sent ${took} ms after the pause ended`);
});
