/**
 * End-to-end durability: Herald runs as a child process, is killed with SIGKILL while events are
 * being triggered, and is started again on the same data directory. Every event whose trigger was
 * answered 200 must still reach the receiver.
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Agent, request } from "undici";
import { TEST_API_KEY } from "../support/herald.js";
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

after(async () => {
  for (const child of children) await child.kill();
  for (const receiver of receivers) await receiver.close();
  for (const agent of agents) await agent.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Starts Herald as a child process on `port` with the data in `dataDir`. */
async function startChild(port: number, dataDir: string): Promise<HeraldProcess> {
  const child = await spawnHerald({
    PORT: String(port),
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    LOG_LEVEL: "warn",
    HERALD_RETRY_SCHEDULE: "100ms,200ms,500ms,1s,1s,1s,1s",
  });
  children.push(child);
  return child;
}

test("every trigger acknowledged before a SIGKILL is delivered after a restart on the same data", {
  timeout: 60_000,
}, async (t) => {
  const received = new Set<number>();
  // Before the kill the receiver answers slowly, so a backlog of pending deliveries builds up
  // and has to survive the crash.
  let slowReceiver = true;
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
    if (slowReceiver) setTimeout(answer, 200);
    else answer();
  });
  receivers.push(receiver);

  const dataDir = mkdtempSync(join(tmpdir(), "herald-crash-"));
  dirs.push(dataDir);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const first = await startChild(port, dataDir);

  const registered = await fetch(`${base}/api/webhooks`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "crash receiver", url: receiver.url, events: ["user.created"] }),
  });
  assert.equal(registered.status, 201);

  const agent = new Agent({ connections: CONCURRENCY * 2 });
  agents.push(agent);

  /** n → eventId, for every trigger answered 200. */
  const acknowledged = new Map<number, string>();
  /** n → error code, for every trigger that got no answer. */
  const connectionFailures = new Map<number, string>();
  const failuresBeforeKill: number[] = [];
  const otherAnswers: Array<{ n: number; status: number; body: string }> = [];
  let killed = false;
  let restarted: Promise<HeraldProcess> | undefined;

  let undeliveredAtKill: number[] = [];
  async function crashAndRestart(): Promise<HeraldProcess> {
    killed = true;
    first.process.kill("SIGKILL");
    undeliveredAtKill = [...acknowledged.keys()].filter((n) => !received.has(n));
    slowReceiver = false;
    const exit = await first.exited;
    assert.equal(exit.signal, "SIGKILL");
    return startChild(port, dataDir);
  }

  let next = 0;
  async function client(): Promise<void> {
    while (next < TOTAL) {
      const n = next++;
      let status: number;
      let text: string;
      try {
        const response = await request(`${base}/api/webhooks/trigger`, {
          method: "POST",
          dispatcher: agent,
          headers: {
            authorization: `Bearer ${TEST_API_KEY}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ event: "user.created", data: { n } }),
          headersTimeout: 15_000,
          bodyTimeout: 15_000,
        });
        status = response.statusCode;
        text = await response.body.text();
      } catch (error) {
        const err = error as { code?: string; message?: string };
        connectionFailures.set(n, err.code ?? err.message ?? String(error));
        if (!killed) failuresBeforeKill.push(n);
        if (restarted) await restarted;
        continue;
      }
      const answer =
        status === 200
          ? (JSON.parse(text) as { eventId?: unknown; deliveries?: unknown })
          : undefined;
      if (typeof answer?.eventId !== "string" || answer.deliveries !== 1) {
        otherAnswers.push({ n, status, body: text });
        continue;
      }
      acknowledged.set(n, answer.eventId);
      if (acknowledged.size >= KILL_AFTER_ACKS && !restarted) restarted = crashAndRestart();
    }
  }

  await Promise.all(Array.from({ length: CONCURRENCY }, () => client()));
  assert.ok(restarted, "the child was killed midway");
  const second = await restarted;

  assert.deepEqual(failuresBeforeKill, [], "no trigger failed before the kill");
  assert.deepEqual(otherAnswers, [], "every answered trigger was a 200");
  assert.ok(connectionFailures.size > 0, "the kill cut some triggers off mid-request");
  for (const n of connectionFailures.keys()) {
    assert.ok(!acknowledged.has(n), `failed trigger ${n} is not counted as acknowledged`);
  }
  assert.equal(acknowledged.size + connectionFailures.size, TOTAL);
  assert.ok(acknowledged.size > KILL_AFTER_ACKS, "triggers were acknowledged after the restart");
  assert.ok(undeliveredAtKill.length > 0, "the kill left acknowledged events undelivered");
  assert.equal(new Set(acknowledged.values()).size, acknowledged.size, "event ids are distinct");

  const deadline = Date.now() + 40_000;
  let missing: number[] = [];
  for (;;) {
    missing = [...acknowledged.keys()].filter((n) => !received.has(n));
    if (missing.length === 0 || Date.now() > deadline) break;
    await sleep(100);
  }
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
