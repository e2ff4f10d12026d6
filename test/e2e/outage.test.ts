/**
 * End-to-end: a PostgreSQL database that refuses connections makes the API answer 503 with
 * Retry-After and plain words, and Herald serves again once the database is back.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startHerald, TEST_API_KEY, waitFor } from "../support/herald.js";
import { capturedLogger } from "../support/log-capture.js";
import {
  createTestSchema,
  dedicatedRole,
  TEST_PG_URL,
  urlWithSchema,
} from "../support/postgres.js";
import { spawnHerald } from "../support/process.js";
import { startSilenceableProxy } from "../support/tcp-proxy.js";

/** Ways a database refuses a role's connections, each with how to let it in again. */
const REFUSALS = [
  {
    how: "out of connections",
    refuse: "CONNECTION LIMIT 0",
    allow: "CONNECTION LIMIT -1",
    advice:
      /^PostgreSQL has no connection left for Herald \(53300\): raise max_connections .* lower HERALD_DB_POOL_SIZE .* The database said: too many connections for role/,
  },
  {
    how: "the login refused",
    refuse: "NOLOGIN",
    allow: "LOGIN",
    advice: /^PostgreSQL refused Herald's login \(28000\): check the user in DATABASE_URL/,
  },
];

for (const { how, refuse, allow, advice } of REFUSALS) {
  test(`while the database refuses connections (${how}) the API answers 503, and recovers after`, async (t) => {
    const { admin, role, url } = await dedicatedRole(t, "herald_outage");
    const { logger, lines } = capturedLogger("info");
    const herald = await startHerald(
      { DATABASE_URL: url.toString(), HERALD_DB_POOL_SIZE: "3" },
      { logger },
    );
    t.after(() => herald.stop());

    const created = await herald.api("POST", "/api/webhooks", {
      name: "outage",
      url: "http://127.0.0.1:9/hook",
      events: ["user.created"],
    });
    assert.equal(created.status, 201);

    await admin.query(`ALTER ROLE ${role} ${refuse}`);
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [
      role,
    ]);
    const trigger = () =>
      fetch(`${herald.url}/api/webhooks/trigger`, {
        method: "POST",
        headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ event: "user.created", data: { n: 1 } }),
      });
    const refused = await trigger();
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("retry-after"), "5");
    const body = (await refused.json()) as Record<string, unknown>;
    assert.equal(body.success, false);
    assert.equal(body.error, "Service Unavailable");
    assert.match(
      String(body.message),
      /cannot use its database right now.*nothing was stored\. Send the request again.*Herald's log says what is wrong/,
    );
    const read = await herald.api("GET", "/api/webhooks");
    assert.equal(read.status, 503);
    // A read is not told that "nothing was stored".
    assert.match(
      read.body.message,
      /cannot use its database right now, so it cannot read what was asked/,
    );
    // Alive, not ready: a load balancer sends it no work meanwhile, and restarts nothing.
    assert.equal((await fetch(`${herald.url}/healthz`)).status, 200);
    const notReady = await fetch(`${herald.url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.equal(notReady.headers.get("retry-after"), "5");
    assert.match(
      String(((await notReady.json()) as Record<string, unknown>).message),
      /database does not answer.*Check that the database is running/,
    );

    // The seed's incoming health says whether webhooks can be stored now: they cannot.
    const sick = await fetch(`${herald.url}/api/incoming-webhooks/health`);
    assert.equal(sick.status, 503);
    assert.equal(sick.headers.get("retry-after"), "5");
    const sickBody = (await sick.json()) as Record<string, unknown>;
    assert.equal(sickBody.success, false);
    assert.match(String(sickBody.message), /^Incoming webhooks cannot be stored right now/);

    await admin.query(`ALTER ROLE ${role} ${allow}`);
    await waitFor(
      async () => ((await trigger()).status === 200 ? true : undefined),
      10_000,
      "Herald to serve triggers again",
    );
    const list = await herald.api("GET", "/api/webhooks");
    assert.equal(list.status, 200);
    assert.equal(list.body.webhooks.length, 1);
    assert.equal((await fetch(`${herald.url}/readyz`)).status, 200);
    const healthy = await fetch(`${herald.url}/api/incoming-webhooks/health`);
    assert.equal(healthy.status, 200);
    assert.equal(
      ((await healthy.json()) as Record<string, unknown>).message,
      "Incoming webhook endpoint is healthy",
    );
    // The operator is told what is wrong and what to do, by the database's own error code.
    const outage = lines.filter((line) => /answered 503/.test(line.msg) && line.level === "error");
    assert.ok(outage.length >= 1, JSON.stringify(lines));
    // The connections the test ended may fail the first request, before the refusal does.
    const first = String(outage[0]?.msg);
    const ended = /^PostgreSQL ended Herald's connection \(57P01: an administrator ended it/;
    assert.ok(advice.test(first) || ended.test(first), first);
    const back = lines.find((line) => line.msg.startsWith("The database serves again"));
    assert.match(String(back?.msg), /While it could not, \d+ requests? (was|were) answered 503\.$/);
  });
}

test("connections cut while requests use them fail those requests, never the process", {
  timeout: 60_000,
}, async (t) => {
  const { admin, role, url } = await dedicatedRole(t, "herald_cut");
  // A child process: an unhandled 'error' event would end it, and the test sees the exit.
  const herald = await spawnHerald({
    DATABASE_URL: url.toString(),
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ROLE: "api",
    LOG_LEVEL: "warn",
  });
  t.after(() => herald.stop());
  const call = (path: string, body: unknown) =>
    fetch(`${herald.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const created = await call("/api/webhooks", {
    name: "cut",
    url: "https://example.com/hook",
    events: ["user.created"],
  });
  assert.equal(created.status, 201);

  const statuses = new Map<number, number>();
  let running = true;
  const clients = Array.from({ length: 16 }, async () => {
    while (running) {
      const response = await call("/api/webhooks/trigger", { event: "user.created", data: {} });
      await response.arrayBuffer();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    }
  });
  for (let cut = 0; cut < 8; cut++) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [
      role,
    ]);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  running = false;
  await Promise.all(clients);

  assert.equal(herald.process.exitCode, null, `Herald exited:\n${herald.output()}`);
  assert.deepEqual(
    [...statuses.keys()].filter((status) => status !== 200 && status !== 503),
    [],
    `answers: ${JSON.stringify([...statuses])}`,
  );
  assert.ok((statuses.get(200) ?? 0) > 0);
  const after = await call("/api/webhooks/trigger", { event: "user.created", data: {} });
  assert.equal(after.status, 200);
});

test("a database that goes silent is reported not ready within about 2 s, not after the driver's timeouts", {
  timeout: 60_000,
}, async (t) => {
  const target = new URL(TEST_PG_URL);
  const proxy = await startSilenceableProxy(target.hostname, Number(target.port || 5432));
  t.after(() => proxy.close());
  const { schema, drop } = await createTestSchema();
  t.after(drop);
  const url = new URL(urlWithSchema(schema));
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  const herald = await startHerald({ DATABASE_URL: url.toString() });
  t.after(async () => {
    proxy.resume();
    await herald.stop();
  });
  assert.equal((await fetch(`${herald.url}/readyz`)).status, 200);

  proxy.silence();
  for (const path of ["/readyz", "/api/incoming-webhooks/health"]) {
    const started = Date.now();
    const answer = await fetch(`${herald.url}${path}`, { signal: AbortSignal.timeout(5000) });
    const took = Date.now() - started;
    assert.equal(answer.status, 503, path);
    assert.ok(took >= 1500 && took < 3500, `${path} answered after ${took} ms`);
    assert.match(
      String(((await answer.json()) as Record<string, unknown>).message),
      /no answer within 2 s/,
    );
  }
  proxy.resume();
  await waitFor(
    async () => ((await fetch(`${herald.url}/readyz`)).status === 200 ? true : undefined),
    15_000,
    "ready again once the network is back",
  );
});
