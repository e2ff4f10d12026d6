/**
 * Scale-out on PostgreSQL: one `api` and two `worker` processes share one database. One worker is
 * killed with SIGKILL in the middle of a delivery run; the other must finish its leased work.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, test } from "node:test";
import pg from "pg";
import { Pool } from "undici";
import { TEST_API_KEY } from "../support/herald.js";
import { createTestSchema, urlWithSchema } from "../support/postgres.js";
import { type HeraldProcess, spawnHerald } from "../support/process.js";
import { startReceiver } from "../support/receiver.js";

const EVENTS = 5000;
const WEBHOOKS = 3;
const WORKER_CONCURRENCY = 32;
const TIMEOUT = "2s";
const LEASE_MS = 2000 + 10_000;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

test("three processes on one database lose nothing when a worker is killed mid-run", {
  timeout: 120_000,
}, async (t) => {
  const { schema, drop } = await createTestSchema();
  cleanups.push(drop);
  const databaseUrl = urlWithSchema(schema);

  /** Arrivals per delivery id, and the time of each. */
  const arrivals = new Map<string, number[]>();
  const secrets = new Map<string, string>();
  let badSignatures = 0;
  const receiver = await startReceiver((request, _i, res) => {
    const path = request.path.slice(1);
    const expected = createHmac("sha256", secrets.get(path) ?? "")
      .update(request.body)
      .digest("hex");
    if (request.headers["x-webhook-signature"] !== expected) badSignatures++;
    const id = String(request.headers["x-webhook-delivery"]);
    const times = arrivals.get(id) ?? [];
    times.push(Date.now());
    arrivals.set(id, times);
    // A little latency keeps attempts in flight, so the kill lands on real work.
    setTimeout(() => res.writeHead(200).end("OK"), 5);
  });
  cleanups.push(() => receiver.close());

  const common = {
    DATABASE_URL: databaseUrl,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    HERALD_DELIVERY_TIMEOUT: TIMEOUT,
    HERALD_DELIVERY_CONCURRENCY: String(WORKER_CONCURRENCY),
    HERALD_RETRY_SCHEDULE: "200ms,500ms,1s,1s,1s",
    LOG_LEVEL: "warn",
  };
  const api = await spawnHerald({ ...common, HERALD_ROLE: "api" });
  cleanups.push(() => api.stop());
  const workers: HeraldProcess[] = [];
  for (let i = 0; i < 2; i++) {
    const worker = await spawnHerald({ ...common, HERALD_ROLE: "worker" });
    cleanups.push(() => worker.stop());
    workers.push(worker);
  }

  // An api process does not deliver, and a worker serves no API.
  const workerApi = await fetch(`${workers[0]!.url}/api/webhooks`, {
    headers: { authorization: `Bearer ${TEST_API_KEY}` },
  });
  assert.equal(workerApi.status, 404);
  assert.match(
    ((await workerApi.json()) as { message: string }).message,
    /delivery worker \(HERALD_ROLE=worker\): it serves only \/healthz, \/readyz and \/metrics/,
  );
  const workerPost = await fetch(`${workers[0]!.url}/api/webhooks`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
    body: "{not json",
  });
  assert.equal(workerPost.status, 404, "a worker answers 404 before reading a body");
  assert.equal(((await workerPost.json()) as { success: boolean }).success, false);
  assert.equal((await fetch(`${workers[0]!.url}/healthz`)).status, 200);
  assert.equal((await fetch(`${workers[0]!.url}/readyz`)).status, 200);
  // Nor does it answer a page's preflight: that is a path it does not have either.
  const workerPreflight = await fetch(`${workers[0]!.url}/api/webhooks`, {
    method: "OPTIONS",
    headers: { origin: "https://app.example.com", "access-control-request-method": "POST" },
  });
  assert.equal(workerPreflight.status, 404);
  assert.equal(workerPreflight.headers.get("access-control-allow-origin"), null);

  const client = new Pool(api.url, { connections: 32 });
  cleanups.push(() => client.close());
  const call = async (method: "POST" | "GET", path: string, body?: unknown) => {
    const response = await client.request({
      method,
      path,
      headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.statusCode, body: (await response.body.json()) as any };
  };

  for (let i = 0; i < WEBHOOKS; i++) {
    const created = await call("POST", "/api/webhooks", {
      name: `scale ${i}`,
      url: `${receiver.url}/hook${i}`,
      events: ["user.created"],
    });
    assert.equal(created.status, 201);
    secrets.set(`hook${i}`, created.body.webhook.secret);
  }

  let next = 0;
  let acknowledged = 0;
  let killedAt = 0;
  let arrivalsAtKill = 0;
  let orphaned: string[] = [];
  let leaseEnds = 0;
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  cleanups.push(() => db.end());
  /** The worker left running once the other is killed. */
  let survivor: HeraldProcess | undefined;
  const pidOf = (worker: HeraldProcess) => worker.process.pid as number;
  const killer = (async () => {
    while (arrivals.size < (EVENTS * WEBHOOKS) / 3) await new Promise((r) => setTimeout(r, 10));
    // Both workers are frozen until one is caught holding leases, and the one holding more is
    // killed, so that the kill always leaves some behind: a fast worker on a busy box may, at a
    // given instant, hold none, and the api process may be handing everything to the other.
    while (arrivals.size < EVENTS * WEBHOOKS) {
      for (const worker of workers) process.kill(pidOf(worker), "SIGSTOP");
      // The rows each worker holds: its lease names its process id.
      const held = await Promise.all(
        workers.map((worker) =>
          db.query<{ id: string; locked_until: string }>(
            "SELECT id, locked_until FROM deliveries WHERE status = 'pending' AND locked_by LIKE $1",
            [`%:${pidOf(worker)}:%`],
          ),
        ),
      );
      const most = held[0]!.rows.length >= held[1]!.rows.length ? 0 : 1;
      const rows = held[most]!.rows;
      if (rows.length > 0) {
        arrivalsAtKill = arrivals.size;
        await workers[most]!.kill();
        killedAt = Date.now();
        survivor = workers[1 - most]!;
        process.kill(pidOf(survivor), "SIGCONT");
        orphaned = rows.map((row) => row.id);
        leaseEnds = Math.max(...rows.map((row) => Number(row.locked_until))) - killedAt;
        return;
      }
      for (const worker of workers) process.kill(pidOf(worker), "SIGCONT");
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < EVENTS) {
        const n = next++;
        const response = await call("POST", "/api/webhooks/trigger", {
          event: "user.created",
          data: { n },
        });
        assert.equal(response.status, 200);
        assert.equal(response.body.deliveries, WEBHOOKS);
        acknowledged++;
      }
    }),
  );
  assert.equal(acknowledged, EVENTS);
  await killer;
  assert.ok(killedAt > 0 && survivor, "a worker was killed during the run");

  const expected = EVENTS * WEBHOOKS;
  // Generous: the wait ends as soon as everything has arrived, and a busy CI box sends slower.
  const deadline = killedAt + LEASE_MS + 60_000;
  while (arrivals.size < expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(arrivals.size, expected, `${expected - arrivals.size} deliveries never arrived`);
  assert.equal(badSignatures, 0);

  // The dead worker's rows are sent by the survivor once their leases run out.
  assert.ok(orphaned.length > 0, "the killed worker held leases when it died");
  let recovered = 0;
  while (Date.now() < killedAt + LEASE_MS + 10_000) {
    const done = await db.query(
      "SELECT 1 FROM deliveries WHERE id = ANY($1) AND status = 'success'",
      [orphaned],
    );
    recovered = done.rowCount ?? 0;
    if (recovered === orphaned.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // When the survivor finished each of them, by the database's record.
  const finished = await db.query<{ at: string }>(
    "SELECT max(updated_at) AS at FROM deliveries WHERE id = ANY($1)",
    [orphaned],
  );
  const recoveredAfter = Number(finished.rows[0]?.at) - killedAt;
  assert.ok(
    recoveredAfter <= LEASE_MS + 8000,
    `the dead worker's deliveries were sent ${recoveredAfter} ms after the kill; the lease is ${LEASE_MS} ms`,
  );
  assert.equal(
    recovered,
    orphaned.length,
    "every delivery the dead worker held was sent by the other worker",
  );

  // Every delivery ends recorded as a success, none left leased.
  {
    const counts = async () =>
      (
        await db.query<{ status: string; n: string }>(
          "SELECT status, count(*) AS n FROM deliveries GROUP BY status ORDER BY status",
        )
      ).rows.map((r) => [r.status, Number(r.n)]);
    let statuses = await counts();
    while (statuses.length !== 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      statuses = await counts();
    }
    assert.deepEqual(statuses, [["success", expected]]);
    const leased = await db.query("SELECT 1 FROM deliveries WHERE locked_by IS NOT NULL");
    assert.equal(leased.rowCount, 0);
  }

  // Only attempts in flight at the kill may arrive twice (the dead worker sent them, and its leases
  // ran out before it could record them), besides retries after a recorded failed attempt.
  const repeated = [...arrivals].filter(([, times]) => times.length > 1).map(([id]) => id);
  const retried = await db.query<{ delivery_id: string }>(
    `SELECT DISTINCT delivery_id FROM delivery_attempts
     WHERE delivery_id = ANY($1) AND (status_code IS NULL OR status_code >= 300)`,
    [repeated],
  );
  const explained = new Set([...orphaned, ...retried.rows.map((row) => row.delivery_id)]);
  assert.deepEqual(
    repeated.filter((id) => !explained.has(id)),
    [],
    "deliveries that arrived twice without being in flight at the kill",
  );
  assert.ok(repeated.length <= orphaned.length + retried.rows.length);
  // The survivor says in its log which worker died, rather than only that leases ran out.
  assert.match(survivor.output(), /Worker \S+ has stopped without signing off/);
  // The api process handed most new deliveries to the workers leased; what the dead worker held
  // reached the survivor by a claim.
  const metrics = await (await fetch(`${survivor.url}/metrics`)).text();
  const taken = (via: string) =>
    Number(
      new RegExp(`^herald_deliveries_taken_total\\{via="${via}"\\} (\\d+)$`, "m").exec(
        metrics,
      )?.[1],
    );
  assert.ok(taken("handed_over") > 0, "the api process handed the surviving worker nothing");
  assert.ok(taken("claim") > 0, "the surviving worker claimed nothing");
  assert.equal(taken("own_commit"), 0, "a worker process commits no deliveries of its own");
  // The api process shows how many workers it hears: the survivor alone now.
  const apiMetrics = await (await fetch(`${api.url}/metrics`)).text();
  assert.match(apiMetrics, /^herald_delivery_workers_heard 1$/m);
  assert.doesNotMatch(metrics, /herald_delivery_workers_heard/);
  t.diagnostic(
    `killed a worker after ${arrivalsAtKill} of ${expected} deliveries, holding ${orphaned.length} (leases ending ${leaseEnds} ms after the kill); the other worker had sent them ${recoveredAfter} ms later (lease ${LEASE_MS} ms); ${repeated.length} arrived twice; the survivor took ${taken("handed_over")} handed over and ${taken("claim")} by claims`,
  );
});

test("the only process, killed with SIGKILL and started again, sends what it held within seconds, not when its leases run out", {
  timeout: 60_000,
}, async (t) => {
  const { schema, drop } = await createTestSchema();
  cleanups.push(drop);
  // Until the kill the receiver never answers, so the first process dies holding every delivery.
  let hanging = true;
  const answered = new Set<string>();
  const receiver = await startReceiver((request, _i, res) => {
    if (hanging) return;
    answered.add(String(request.headers["x-webhook-delivery"]));
    res.writeHead(200).end("OK");
  });
  cleanups.push(() => receiver.close());
  const env = {
    DATABASE_URL: urlWithSchema(schema),
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    // Leases last the timeout plus 10 s: 40 s here.
    HERALD_DELIVERY_TIMEOUT: "30s",
    LOG_LEVEL: "warn",
  };
  const first = await spawnHerald(env);
  cleanups.push(() => first.kill());
  const call = (base: string, path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const created = await call(first.url, "/api/webhooks", {
    name: "restart",
    url: receiver.url,
    events: ["user.created"],
  });
  assert.equal(created.status, 201);
  const EVENTS_HELD = 20;
  for (let n = 0; n < EVENTS_HELD; n++) {
    const triggered = await call(first.url, "/api/webhooks/trigger", {
      event: "user.created",
      data: { n },
    });
    assert.equal(triggered.status, 200);
  }
  while (receiver.requests.length === 0) await new Promise((r) => setTimeout(r, 20));

  await first.kill();
  hanging = false;
  const killedAt = Date.now();
  const second = await spawnHerald(env);
  cleanups.push(() => second.stop());
  while (answered.size < EVENTS_HELD && Date.now() < killedAt + 30_000) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const elapsed = Date.now() - killedAt;
  assert.equal(answered.size, EVENTS_HELD, `${EVENTS_HELD - answered.size} deliveries not sent`);
  assert.ok(elapsed < 15_000, `sent ${elapsed} ms after the kill; leases last 40 s`);
  t.diagnostic(`all ${EVENTS_HELD} deliveries sent ${elapsed} ms after the kill (leases: 40 s)`);
});
