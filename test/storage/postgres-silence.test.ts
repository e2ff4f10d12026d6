/**
 * PostgreSQL behind a network that goes silent (packets dropped, nothing closed): statements fail
 * within the store's answer timeout as an outage instead of hanging, and held sessions (a LISTEN, a
 * liveness lock) notice, reconnect, and say once that they were lost and once that they are back.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import pg from "pg";
import { storageOutage } from "../../src/adapters/storage/outage.js";
import { holdSession } from "../../src/adapters/storage/postgres/held-session.js";
import {
  openPostgresStore,
  postgresClientConfig,
} from "../../src/adapters/storage/postgres/postgres-store.js";
import { createTestSchema, TEST_PG_URL } from "../support/postgres.js";
import { startSilenceableProxy } from "../support/tcp-proxy.js";

/** The test server's URL, reached through a proxy that can go silent. */
async function silenceableDatabase(t: { after(fn: () => Promise<void>): void }) {
  const target = new URL(TEST_PG_URL);
  const proxy = await startSilenceableProxy(target.hostname, Number(target.port || 5432));
  t.after(() => proxy.close());
  const url = new URL(TEST_PG_URL);
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  return { proxy, url: url.toString() };
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test("a statement the database never answers fails within the answer timeout as an outage, and the store serves once the network is back", {
  timeout: 30_000,
}, async (t) => {
  const { schema, drop } = await createTestSchema();
  t.after(drop);
  const { proxy, url } = await silenceableDatabase(t);
  const store = await openPostgresStore({ url, poolSize: 2, schema, answerTimeoutMs: 500 });
  t.after(() => store.close());
  assert.equal(await store.getWebhook("wh_missing"), undefined);

  proxy.silence();
  const started = Date.now();
  const failure = await store.getWebhook("wh_missing").then(
    () => assert.fail("a statement through a silent network was answered"),
    (error: unknown) => error,
  );
  const waited = Date.now() - started;
  assert.equal(storageOutage(failure), "no_answer");
  assert.ok(waited < 5_000, `the statement waited ${waited} ms with a 500 ms timeout`);

  proxy.resume();
  // The connection that timed out is closed, not handed to the next statement.
  assert.equal(await store.getWebhook("wh_missing"), undefined);
  assert.deepEqual(await store.listWebhooks(), []);
});

test("a held session notices a silent network, and says once that it was lost and once that it is back", {
  timeout: 60_000,
}, async (t) => {
  const { proxy, url } = await silenceableDatabase(t);
  const name = `held_${randomBytes(4).toString("hex")}`;
  const lost: Error[] = [];
  const restored: Array<{ downMs: number; losses: number }> = [];
  let prepared = 0;
  const session = await holdSession(
    { ...postgresClientConfig({ url }), application_name: name },
    async (client) => {
      await client.query(`LISTEN ${name}`);
      prepared++;
    },
    { lost: (error) => lost.push(error), restored: (outage) => restored.push(outage) },
    { checkEveryMs: 100, answerWithinMs: 300, stableAfterMs: 400 },
  );
  t.after(() => session.close());
  assert.equal(prepared, 1);

  proxy.silence();
  await until(() => lost.length > 0, 5_000, "the silent session was not noticed");
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  proxy.resume();
  await until(() => restored.length > 0, 10_000, "the session did not come back");
  assert.equal(lost.length, 1, "one line for one outage");
  assert.equal(restored.length, 1);
  assert.ok(prepared >= 2, "the new session was set up again");
  assert.ok((restored[0]?.downMs ?? 0) >= 1_000, `down ${restored[0]?.downMs} ms`);

  // Cut twice in a row, it is one outage, with both losses counted.
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  t.after(() => admin.end());
  const cut = () =>
    admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
      [name],
    );
  const before = prepared;
  await cut();
  await until(() => prepared > before, 10_000, "no new session after the first cut");
  await cut();
  await until(() => restored.length > 1, 10_000, "the session did not come back after two cuts");
  assert.equal(lost.length, 2);
  assert.equal(restored[1]?.losses, 2);
});

test("a trigger whose connection breaks after its statement was sent is told it may have been stored, and it was", {
  timeout: 30_000,
}, async (t) => {
  const { schema, drop } = await createTestSchema();
  t.after(drop);
  const { proxy, url } = await silenceableDatabase(t);
  const store = await openPostgresStore({ url, poolSize: 2, schema });
  t.after(() => store.close());
  const webhook = {
    id: "wh_cut_1",
    name: "cut",
    url: "https://example.com/cut",
    events: ["user.created"],
    secret: "secret",
    active: true,
    createdAt: 1,
    updatedAt: 1,
  };
  await store.insertWebhook(webhook);

  // Another session holds the webhook's row, so the trigger's INSERT waits on the server.
  const holder = new pg.Client({ connectionString: TEST_PG_URL });
  await holder.connect();
  t.after(() => holder.end());
  await holder.query(`SET search_path TO ${schema}`);
  await holder.query("BEGIN");
  await holder.query("SELECT id FROM webhooks WHERE id = $1 FOR UPDATE", [webhook.id]);

  let n = 0;
  const stored = store.enqueueEvent(
    { id: "evt_cut_1", type: "user.created", body: "{}", createdAt: 2 },
    (active) => [...active],
    () => `del_cut_${++n}`,
  );
  const failure = stored.then(
    () => assert.fail("the trigger was answered through a cut connection"),
    (error: unknown) => error,
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  proxy.cut();
  const outage = storageOutage(await failure);
  // The server still holds the statement: once the row is free, it commits.
  await holder.query("COMMIT");
  // "unavailable" would tell the client nothing was stored; the statement was already sent.
  assert.equal(outage, "no_answer");
  const direct = new pg.Client({ connectionString: TEST_PG_URL });
  await direct.connect();
  t.after(() => direct.end());
  const deadline = Date.now() + 5_000;
  for (;;) {
    const { rows } = await direct.query(
      `SELECT count(*)::int AS n FROM ${schema}.events WHERE id = 'evt_cut_1'`,
    );
    if (rows[0].n === 1) break;
    assert.ok(Date.now() < deadline, "the statement sent before the cut was never committed");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});
