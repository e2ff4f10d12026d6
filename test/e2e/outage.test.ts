/**
 * End-to-end: a PostgreSQL database that refuses connections makes the API answer 503 with
 * Retry-After and plain words, and Herald serves again once the database is back.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import pg from "pg";
import { startHerald, TEST_API_KEY, waitFor } from "../support/herald.js";
import { TEST_PG_URL } from "../support/postgres.js";

test("while the database refuses connections the API answers 503, and recovers after", async (t) => {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  // A role of its own, so cutting its connections touches no other test.
  const role = `herald_outage_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE ROLE ${role} LOGIN`);
  await admin.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
  t.after(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${role} CASCADE`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });
  const url = new URL(TEST_PG_URL);
  url.username = role;
  url.searchParams.set("options", `-c search_path=${role}`);
  const herald = await startHerald({ DATABASE_URL: url.toString(), HERALD_DB_POOL_SIZE: "3" });
  t.after(() => herald.stop());

  const created = await herald.api("POST", "/api/webhooks", {
    name: "outage",
    url: "http://127.0.0.1:9/hook",
    events: ["user.created"],
  });
  assert.equal(created.status, 201);

  await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT 0`);
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
  assert.match(String(body.message), /cannot reach its database.*Send the request again/);
  assert.equal((await herald.api("GET", "/api/webhooks")).status, 503);

  await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT -1`);
  await waitFor(
    async () => ((await trigger()).status === 200 ? true : undefined),
    10_000,
    "Herald to serve triggers again",
  );
  const list = await herald.api("GET", "/api/webhooks");
  assert.equal(list.status, 200);
  assert.equal(list.body.webhooks.length, 1);
});
