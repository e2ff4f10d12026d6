import assert from "node:assert/strict";
import { test } from "node:test";
import pg from "pg";
import {
  migratePostgres,
  POSTGRES_MIGRATIONS,
} from "../../src/adapters/storage/postgres/migrations.js";
import {
  changedWebhookOf,
  DELIVERY_CHANNEL,
  openPostgresStore,
  type PostgresStoreOptions,
  postgresClientConfig,
} from "../../src/adapters/storage/postgres/postgres-store.js";
import {
  startTableUpkeep,
  type TableUpkeep,
} from "../../src/adapters/storage/postgres/table-upkeep.js";
import {
  handoverChannel,
  roomChannel,
} from "../../src/adapters/storage/postgres/worker-handover.js";
import {
  WORKER_GRACE_MS,
  WORKER_LOCK_CLASS,
} from "../../src/adapters/storage/postgres/worker-liveness.js";
import {
  schemaAheadNotice,
  schemaUpgradeNotice,
} from "../../src/adapters/storage/schema-version.js";
import type { ClaimedDelivery } from "../../src/domain/deliveries.js";
import type { LocalDeliveryTaker, Store, WorkerRoom } from "../../src/domain/ports.js";
import { plainWebhook, storeOneDelivery } from "../support/fixtures.js";
import { capturedLogger } from "../support/log-capture.js";
import { createTestSchema, TEST_PG_URL, urlWithSchema } from "../support/postgres.js";
import { startSilenceableProxy } from "../support/tcp-proxy.js";
import { checkEarlierAttemptsShow } from "./earlier-attempts.js";
import { describeStoreContract } from "./store-contract.js";

describeStoreContract("PostgreSQL", async () => {
  const { schema, drop } = await createTestSchema();
  const open = () => openPostgresStore({ url: TEST_PG_URL, poolSize: 4, schema });
  let store = await open();
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = await open();
      return store;
    },
    async destroy() {
      await store.close();
      await drop();
    },
  };
});

test("sessions keep the URL's own settings and add Herald's planner cost and keepalive", async () => {
  const { schema, drop } = await createTestSchema();
  try {
    for (const [config, searchPath] of [
      [postgresClientConfig({ url: urlWithSchema(schema) }), schema],
      [postgresClientConfig({ url: TEST_PG_URL, schema }), schema],
    ] as const) {
      const client = new pg.Client(config);
      await client.connect();
      try {
        const { rows } = await client.query<{ cost: string; path: string; keepalive: string }>(
          `SELECT current_setting('random_page_cost') AS cost, current_setting('search_path') AS path,
             CASE WHEN inet_client_addr() IS NULL THEN 'no TCP' ELSE current_setting('tcp_keepalives_idle') END
               AS keepalive`,
        );
        const keepalive = rows[0]?.keepalive === "no TCP" ? "no TCP" : "30";
        assert.deepEqual(rows[0], { cost: "1.1", path: searchPath, keepalive });
      } finally {
        await client.end();
      }
    }
  } finally {
    await drop();
  }
});

test("ten processes migrating one database at once apply each migration exactly once", async () => {
  const { schema, drop } = await createTestSchema();
  const pools = Array.from(
    { length: 10 },
    () => new pg.Pool({ ...postgresClientConfig({ url: TEST_PG_URL, schema }), max: 1 }),
  );
  try {
    const results = await Promise.all(pools.map((pool) => migratePostgres(pool)));
    assert.equal(
      results.reduce((sum, { applied }) => sum + applied, 0),
      POSTGRES_MIGRATIONS.length,
    );
    for (const result of results) {
      assert.equal(result.schemaVersion, POSTGRES_MIGRATIONS.length);
      assert.equal(schemaAheadNotice(result), undefined);
    }
    // A newer release has upgraded the schema: nothing is applied, and the notice says so.
    const pool = pools[0] as pg.Pool;
    await pool.query("INSERT INTO herald_schema_migrations (version) VALUES ($1)", [
      POSTGRES_MIGRATIONS.length + 1,
    ]);
    const ahead = await migratePostgres(pool);
    assert.deepEqual(ahead, {
      fromVersion: POSTGRES_MIGRATIONS.length + 1,
      applied: 0,
      schemaVersion: POSTGRES_MIGRATIONS.length + 1,
      releaseVersion: POSTGRES_MIGRATIONS.length,
    });
    assert.match(
      schemaAheadNotice(ahead) ?? "",
      new RegExp(
        `^The database's schema is at version ${POSTGRES_MIGRATIONS.length + 1}, newer than this release of Herald knows \\(${POSTGRES_MIGRATIONS.length}\\): a newer Herald has upgraded it`,
      ),
    );
    await pool.query("DELETE FROM herald_schema_migrations WHERE version > $1", [
      POSTGRES_MIGRATIONS.length,
    ]);
    const { rows } = await (pools[0] as pg.Pool).query<{ version: number }>(
      "SELECT version FROM herald_schema_migrations ORDER BY version",
    );
    assert.deepEqual(
      rows.map((row) => row.version),
      POSTGRES_MIGRATIONS.map((_, i) => i + 1),
    );
  } finally {
    await Promise.all(pools.map((pool) => pool.end()));
    await drop();
  }
});

test("a schema made by an earlier release with other indexes is brought to a new schema's indexes", async () => {
  const { schema, drop } = await createTestSchema();
  const pool = new pg.Pool({ ...postgresClientConfig({ url: TEST_PG_URL, schema }), max: 1 });
  const indexes = async () =>
    Object.fromEntries(
      (
        await pool.query<{ indexname: string; indexdef: string }>(
          "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1",
          [schema],
        )
      ).rows.map((row) => [row.indexname, row.indexdef]),
    );
  try {
    await migratePostgres(pool);
    const fresh = await indexes();
    const last = POSTGRES_MIGRATIONS.length;
    // As such a release left it: leftover indexes, the claim index without seq.
    await pool.query(`
      DELETE FROM herald_schema_migrations WHERE version = ${last};
      CREATE INDEX incoming_by_time ON incoming_events (received_at);
      CREATE INDEX incoming_by_status ON incoming_events (status, seq);
      DROP INDEX deliveries_claimable_by_webhook;
      CREATE INDEX deliveries_claimable_by_webhook ON deliveries (webhook_id, next_attempt_at)
        WHERE status = 'pending' AND locked_by IS NULL;
    `);
    assert.notDeepEqual(await indexes(), fresh);
    const result = await migratePostgres(pool);
    assert.deepEqual(result, {
      fromVersion: last - 1,
      applied: 1,
      schemaVersion: last,
      releaseVersion: last,
    });
    assert.deepEqual(await indexes(), fresh);
    assert.equal(
      schemaUpgradeNotice(result),
      `Upgraded the database's schema from version ${last - 1} to ${last} (1 migration applied); what it held is kept.`,
    );
  } finally {
    await pool.end();
    await drop();
  }
});

test("attempts recorded before the latest attempt moved into the delivery row still show", async () => {
  const { schema, drop } = await createTestSchema();
  const client = new pg.Client(postgresClientConfig({ url: TEST_PG_URL, schema }));
  await client.connect();
  try {
    await checkEarlierAttemptsShow(
      () => openPostgresStore({ url: TEST_PG_URL, poolSize: 2, schema }),
      async (sql) => {
        await client.query(sql);
      },
    );
  } finally {
    await client.end();
    await drop();
  }
});

test("deleting a webhook while events for it are being stored leaves none of its deliveries behind", async () => {
  const { schema, drop } = await createTestSchema();
  const store = await openPostgresStore({ url: TEST_PG_URL, poolSize: 6, schema });
  const client = new pg.Client(postgresClientConfig({ url: TEST_PG_URL, schema }));
  await client.connect();
  try {
    for (let round = 0; round < 5; round++) {
      const hook = plainWebhook(`wh_race_${round}`);
      await store.insertWebhook(hook);
      let serial = 0;
      const stored = Array.from({ length: 300 }, (_, i) =>
        store.enqueueEvent(
          { id: `evt_race_${round}_${i}`, type: "user.created", body: "{}", createdAt: 1 },
          (active) => [...active],
          () => `del_race_${round}_${serial++}`,
        ),
      );
      // The delete lands while batches of those events are in flight.
      await new Promise((resolve) => setTimeout(resolve, 5 * round));
      await store.deleteWebhook(hook.id);
      await Promise.all(stored);
      const { rows } = await client.query<{ left: string }>(
        "SELECT count(*) AS left FROM deliveries WHERE webhook_id = $1",
        [hook.id],
      );
      assert.equal(Number(rows[0]?.left), 0, `round ${round}: deliveries of a deleted webhook`);
    }
  } finally {
    await client.end();
    await store.close();
    await drop();
  }
});

/**
 * Runs `body` on a fresh schema. Each store `open` gives stands for one process; `connect` gives a
 * plain session on the server, for what a test does beside the stores. All are closed and the
 * schema dropped afterwards.
 */
async function onFreshSchema(
  body: (
    open: (extra?: Partial<PostgresStoreOptions>) => Promise<Store>,
    connect: () => Promise<pg.Client>,
    schema: string,
  ) => Promise<void>,
): Promise<void> {
  const { schema, drop } = await createTestSchema();
  const opened: Store[] = [];
  const sessions: pg.Client[] = [];
  try {
    await body(
      async (extra) => {
        const store = await openPostgresStore({ url: TEST_PG_URL, poolSize: 2, schema, ...extra });
        opened.push(store);
        return store;
      },
      async () => {
        const session = new pg.Client({ connectionString: TEST_PG_URL });
        await session.connect();
        sessions.push(session);
        return session;
      },
      schema,
    );
  } finally {
    for (const session of sessions) await session.end();
    for (const store of opened) await store.close();
    await drop();
  }
}

const nothingFreed = { expired: 0, ofDeadWorkers: 0, deadWorkers: [] };

test("deliveries leased to a worker are counted apart from those due, for the start line", () =>
  onFreshSchema(async (open) => {
    const store = await open();
    await store.insertWebhook(plainWebhook("wh_counted"));
    for (let i = 0; i < 3; i++) {
      await store.enqueueEvent(
        { id: `evt_counted_${i}`, type: "user.created", body: "{}", createdAt: 1 },
        (active) => [...active],
        () => `del_counted_${i}`,
      );
    }
    await store.claimDueDeliveries({ now: 10, limit: 1, workerId: "w", leaseUntil: 10 ** 12 });
    assert.deepEqual(await store.countPendingDeliveries(10), { due: 2, later: 0, held: 1 });
    // A running worker's leases are its own business: not counted as left behind.
    await store.markWorkerAlive("w-running");
    await store.claimDueDeliveries({
      now: 10,
      limit: 1,
      workerId: "w-running",
      leaseUntil: 10 ** 12,
    });
    assert.deepEqual(await store.countPendingDeliveries(10), { due: 1, later: 0, held: 1 });
    // A lease that ran out is left behind, whoever held it.
    assert.deepEqual(await store.countPendingDeliveries(10 ** 12), { due: 1, later: 0, held: 2 });
  }));

test("a worker that stops holding no leases signs off: no other process takes it for dead", () =>
  onFreshSchema(async (open) => {
    const leaving = await open();
    const staying = await open();
    await leaving.markWorkerAlive("worker-leaving");
    await leaving.close();
    assert.deepEqual(await staying.releaseExpiredLeases(10 ** 12), nothingFreed);
    assert.deepEqual(
      await staying.releaseExpiredLeases(10 ** 12 + WORKER_GRACE_MS),
      nothingFreed,
      "a worker that signed off was taken for dead",
    );
  }));

test("a dead worker's leases are freed after a short grace; a live worker's and an unregistered one's are kept until they run out", () =>
  onFreshSchema(async (open) => {
    // Two stores on one schema stand for two processes.
    const first = await open();
    const second = await open();
    await first.insertWebhook(plainWebhook("wh_alive"));
    let serial = 0;
    for (let i = 0; i < 3; i++) {
      await first.enqueueEvent(
        { id: `evt_alive_${i}`, type: "user.created", body: "{}", createdAt: 1 },
        (active) => [...active],
        () => `del_alive_${serial++}`,
      );
    }
    const farAway = 10 ** 12;
    const claim = (store: typeof first, workerId: string, limit: number) =>
      store.claimDueDeliveries({ now: 100, limit, workerId, leaseUntil: farAway });
    await first.markWorkerAlive("worker-first");
    assert.equal((await claim(first, "worker-first", 2)).length, 2);
    // Never marked alive: its lease is kept until it runs out, as before.
    assert.equal((await claim(second, "worker-unregistered", 1)).length, 1);

    assert.deepEqual(
      await second.releaseExpiredLeases(200),
      nothingFreed,
      "a live worker's leases were freed",
    );
    assert.equal((await claim(second, "worker-second", 10)).length, 0);

    // The first process ends: its session, and with it the lock, is gone. It counts as dead once
    // the grace has passed.
    await first.close();
    assert.deepEqual(
      await second.releaseExpiredLeases(200),
      nothingFreed,
      "freed before the grace passed",
    );
    assert.deepEqual(await second.releaseExpiredLeases(200 + WORKER_GRACE_MS - 1), nothingFreed);
    assert.deepEqual(await second.releaseExpiredLeases(200 + WORKER_GRACE_MS), {
      expired: 0,
      ofDeadWorkers: 2,
      deadWorkers: ["worker-first"],
    });
    const resent = await claim(second, "worker-second", 10);
    assert.deepEqual(resent.map((d) => d.id).sort(), ["del_alive_0", "del_alive_1"]);
    assert.deepEqual(
      await second.releaseExpiredLeases(farAway),
      { expired: 3, ofDeadWorkers: 0, deadWorkers: [] },
      "leases that ran out are freed",
    );
  }));

test("a worker whose liveness lock another session holds is not marked alive", () =>
  onFreshSchema(async (open, connect) => {
    const store = await open();
    const other = await connect();
    await other.query("SELECT pg_advisory_lock($1, hashtext($2))", [
      WORKER_LOCK_CLASS,
      "worker-taken",
    ]);
    await assert.rejects(store.markWorkerAlive("worker-taken"), /holds the liveness lock/);
    await other.query("SELECT pg_advisory_unlock_all()");
    await store.markWorkerAlive("worker-taken");
  }));

test("a worker whose liveness connection is cut keeps its leases: its own sweep never frees them, and it is back within the grace", () =>
  onFreshSchema(async (open, connect) => {
    const own = await open();
    const other = await open();
    const admin = await connect();
    await storeOneDelivery(own, "own");
    await own.markWorkerAlive("worker-own");
    const claimed = await own.claimDueDeliveries({
      now: 100,
      limit: 1,
      workerId: "worker-own",
      leaseUntil: 10 ** 12,
    });
    assert.equal(claimed.length, 1);
    // Its liveness session is cut, as by a network blip.
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks
       WHERE locktype = 'advisory' AND classid = $1::oid AND objid = hashtext($2)::oid`,
      [WORKER_LOCK_CLASS, "worker-own"],
    );
    assert.deepEqual(
      await own.releaseExpiredLeases(200),
      nothingFreed,
      "its own sweep freed its lease",
    );
    assert.deepEqual(
      await other.releaseExpiredLeases(200),
      nothingFreed,
      "freed before the grace passed",
    );
    // It reconnects and takes its lock back; a sweep after the grace then leaves it alone.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const held = await admin.query(
        `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND classid = $1::oid AND objid = hashtext($2)::oid`,
        [WORKER_LOCK_CLASS, "worker-own"],
      );
      if (held.rowCount) break;
      assert.ok(Date.now() < deadline, "the worker did not take its lock back");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(await other.releaseExpiredLeases(200 + WORKER_GRACE_MS), nothingFreed);
    assert.equal(
      (
        await other.claimDueDeliveries({
          now: 300,
          limit: 1,
          workerId: "worker-other",
          leaseUntil: 400,
        })
      ).length,
      0,
    );
  }));

test("a webhook whose URL or state changes, or that is deleted, is named to the workers of every process", () =>
  onFreshSchema(async (open, connect) => {
    const store = await open();
    const listener = await connect();
    const payloads: string[] = [];
    listener.on("notification", (message) => payloads.push(message.payload ?? ""));
    await listener.query(`LISTEN ${DELIVERY_CHANNEL}`);
    // Other suites share the database and its channels: only this webhook's own payload counts.
    const id = `wh_wake_${process.pid}_${Date.now()}`;
    const webhook = { ...plainWebhook(id), active: false };
    await store.insertWebhook(webhook);
    await store.updateWebhook({ ...webhook, name: "still paused", updatedAt: 2 });
    await store.updateWebhook({ ...webhook, active: true, updatedAt: 3 });
    await store.updateWebhook({ ...webhook, active: true, events: ["user.updated"], updatedAt: 4 });
    await store.updateWebhook({
      ...webhook,
      active: true,
      url: "https://example.org",
      updatedAt: 5,
    });
    await store.deleteWebhook(id);
    const deadline = Date.now() + 5000;
    const named = () => payloads.filter((payload) => payload.includes(id));
    while (named().length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Made active, given a new URL, deleted: a new name or events changes nothing held.
    assert.deepEqual(named(), Array(3).fill(`webhook ${id} changed`));
    assert.equal(changedWebhookOf(`webhook ${id} changed`), id);
    assert.equal(changedWebhookOf(""), undefined);
  }));

test("upgrading links the events that incoming webhooks were already routed to", async () => {
  const { schema, drop } = await createTestSchema();
  const client = new pg.Client(postgresClientConfig({ url: TEST_PG_URL, schema }));
  await client.connect();
  let store: Store | undefined;
  try {
    // A schema as the version before the link was stored left it.
    const before = POSTGRES_MIGRATIONS.findIndex((sql) =>
      sql.includes("ADD COLUMN incoming_event_id"),
    );
    assert.ok(before > 0);
    await client.query(
      "CREATE TABLE herald_schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    for (let version = 0; version < before; version++) {
      await client.query(POSTGRES_MIGRATIONS[version] as string);
      await client.query("INSERT INTO herald_schema_migrations (version) VALUES ($1)", [
        version + 1,
      ]);
    }
    await client.query(
      `INSERT INTO events (id, type, body, created_at)
       VALUES ('evt_routed', 'user.created', '{}', 10), ('evt_triggered', 'user.created', '{}', 20)`,
    );
    await client.query(
      `INSERT INTO incoming_events (id, service, headers, raw_body, verified_by, status,
       outgoing_event_id, received_at)
       VALUES ('evt_in', 'xano', '{}', '\\x7b7d', 'xano', 'routed', 'evt_routed', 5)`,
    );

    store = await openPostgresStore({ url: TEST_PG_URL, poolSize: 2, schema });
    assert.deepEqual(await store.routedEvents("evt_in", 10), [
      { id: "evt_routed", type: "user.created", createdAt: 10 },
    ]);
    assert.equal((await store.getEvent("evt_routed"))?.incomingEventId, "evt_in");
    assert.equal((await store.getEvent("evt_triggered"))?.incomingEventId, undefined);
  } finally {
    await store?.close();
    await client.end();
    await drop();
  }
});

test("with autovacuum off, Herald vacuums and analyzes its tables once they need it, saying so once", async () => {
  const { schema, drop } = await createTestSchema();
  const config = postgresClientConfig({ url: TEST_PG_URL, schema });
  const pool = new pg.Pool({ ...config, max: 2 });
  const { logger, lines } = capturedLogger("debug");
  let upkeep: TableUpkeep | undefined;
  try {
    const { rows } = await pool.query<{ on: string }>("SELECT current_setting('autovacuum') AS on");
    assert.equal(rows[0]?.on, "off", "this test needs a server whose autovacuum is off");
    await migratePostgres(pool);
    // Rows changed on a connection that then ends, so the server has counted them.
    const writer = new pg.Client(config);
    await writer.connect();
    await writer.query(
      `INSERT INTO webhooks (id, name, url, events, secret, active, created_at, updated_at)
       VALUES ('wh_1', 'a', 'https://example.com', '["user.created"]', 's', true, 1, 1)`,
    );
    await writer.query(
      `INSERT INTO events (id, type, body, created_at)
       SELECT 'evt_' || i, 'user.created', '{}', 1 FROM generate_series(1, 2000) i`,
    );
    await writer.query(
      `INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, attempts,
         next_attempt_at, created_at, updated_at)
       SELECT 'del_' || i, 'wh_1', 'evt_' || i, 'user.created', 'pending', 0, 1, 1, 1
       FROM generate_series(1, 2000) i`,
    );
    await writer.query("UPDATE deliveries SET status = 'success', next_attempt_at = NULL");
    await writer.end();
    const stats = async () =>
      (
        await pool.query<{ dead: number; vacuumed: boolean; analyzed: boolean }>(
          `SELECT n_dead_tup::int AS dead, last_vacuum IS NOT NULL AS vacuumed,
             last_analyze IS NOT NULL AS analyzed
           FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'deliveries'`,
          [schema],
        )
      ).rows[0];
    let before = await stats();
    for (let i = 0; i < 50 && (before?.dead ?? 0) < 2000; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      before = await stats();
    }
    assert.deepEqual(before, { dead: 2000, vacuumed: false, analyzed: false });

    upkeep = await startTableUpkeep(pool, 3_600_000, logger);
    assert.ok(upkeep, "no upkeep started although autovacuum is off");
    await upkeep.runOnce();
    assert.deepEqual(await stats(), { dead: 0, vacuumed: true, analyzed: true });
    assert.equal(lines.filter((line) => /autovacuum is off/.test(line.msg)).length, 1);
    assert.ok(lines.some((line) => line.msg === 'Ran VACUUM (ANALYZE) "deliveries".'));
    // Nothing is due now: a second check runs nothing.
    const ran = lines.filter((line) => line.msg.startsWith("Ran ")).length;
    await upkeep.runOnce();
    assert.equal(lines.filter((line) => line.msg.startsWith("Ran ")).length, ran);
  } finally {
    await upkeep?.stop();
    await pool.end();
    await drop();
  }
});

/** Claims what is due now, for a worker other than the one under test, with a long lease. */
function claimNow(store: Store, limit: number, workerId = "worker-other") {
  return store.claimDueDeliveries({
    now: Date.now(),
    limit,
    workerId,
    leaseUntil: Date.now() + 60_000,
  });
}

/** Stores event `eventId` with an empty body for every active webhook; deliveries get `deliveryId()`. */
function storeEvent(store: Store, eventId: string, deliveryId: () => string) {
  return store.enqueueEvent(
    { id: eventId, type: "user.created", body: "{}", createdAt: 1 },
    (active) => [...active],
    deliveryId,
  );
}

/**
 * A worker in another process, as the store sees it: it tells `room()` and records what is handed
 * to it; `refuse` lists deliveries it gives back.
 */
function remoteWorker(workerId: string, room: () => WorkerRoom | undefined) {
  const handed: Array<{ deliveries: ClaimedDelivery[]; leaseUntil: number }> = [];
  const refuse = new Set<string>();
  const taker: LocalDeliveryTaker = {
    workerId,
    reserve: () => undefined,
    take() {
      throw new Error("nothing is committed in the worker's own process");
    },
    untaken() {},
    room,
    takeLeased(deliveries, leaseUntil) {
      handed.push({ deliveries, leaseUntil });
      return deliveries.filter((delivery) => refuse.has(delivery.eventId));
    },
  };
  return { taker, handed, refuse };
}

const roomy = (): WorkerRoom => ({
  deliveries: 1000,
  bodyLength: 10 ** 6,
  leaseMs: 30_000,
  fullWebhooks: [],
});

/**
 * An api process and, in a store of its own, a worker elsewhere (see remoteWorker) that tells
 * `room`, with `webhookIds` registered.
 */
async function apiAndRemoteWorker(
  open: (extra?: Partial<PostgresStoreOptions>) => Promise<Store>,
  workerId: string,
  webhookIds: string[],
  room: () => WorkerRoom | undefined = roomy,
) {
  const workerStore = await open();
  const api = await open({ handOverToWorkers: true });
  for (const id of webhookIds) await api.insertWebhook(plainWebhook(id));
  const worker = remoteWorker(workerId, room);
  workerStore.setLocalTaker(worker.taker);
  return { api, worker, workerStore };
}

/** Triggers event `evt_<name>_<n>` on `api` until `done()` or 5 s; answers the last n. */
async function triggerUntil(
  api: Store,
  name: string,
  done: () => boolean,
): Promise<{ last: number; count: number }> {
  const deadline = Date.now() + 5000;
  let n = 0;
  let count = 0;
  while (!done()) {
    assert.ok(Date.now() < deadline, "the worker's room was never heard");
    count = await api.enqueueEvent(
      { id: `evt_${name}_${++n}`, type: "user.created", body: `{"n":${n}}`, createdAt: 1 },
      (active) => [...active],
      () => `del_${name}_${n}_${Math.random().toString(36).slice(2, 8)}`,
    );
    if (!done()) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { last: n, count };
}

test("an api process leases new deliveries to a worker elsewhere that told its room, and names them to it: no claim needed", () =>
  onFreshSchema(async (open) => {
    const { api, worker } = await apiAndRemoteWorker(open, "worker-elsewhere", [
      "wh_one",
      "wh_two",
    ]);
    const before = Date.now();
    const { last } = await triggerUntil(api, "handed", () => worker.handed.length > 0);
    const after = Date.now();
    const [handover] = worker.handed;
    assert.ok(handover);
    const { deliveries, leaseUntil } = handover;
    assert.deepEqual(
      deliveries.map((d) => [d.eventId, d.webhookId, d.body, d.url, d.secret, d.attempts]).sort(),
      [
        [`evt_handed_${last}`, "wh_one", `{"n":${last}}`, "https://example.com", "s", 0],
        [`evt_handed_${last}`, "wh_two", `{"n":${last}}`, "https://example.com", "s", 0],
      ],
    );
    assert.ok(leaseUntil >= before + 30_000 && leaseUntil <= after + 30_000, "the lease told");
    // Leased in the database: nobody else claims them while the lease holds.
    const claimed = await claimNow(api, 100);
    const handedIds = new Set(deliveries.map((d) => d.id));
    assert.equal(claimed.filter((d) => handedIds.has(d.id)).length, 0);
    assert.equal(
      claimed.length,
      (last - 1) * 2,
      "the events stored before the room was heard wait to be claimed",
    );
  }));

/** Waits until `worker` has been handed the deliveries `ids`; answers them, in that order. */
async function handedDeliveries(worker: ReturnType<typeof remoteWorker>, ids: string[]) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const handed = new Map(worker.handed.flatMap((h) => h.deliveries.map((d) => [d.id, d])));
    const found = ids.map((id) => handed.get(id));
    if (found.every((d) => d !== undefined)) return found as ClaimedDelivery[];
    assert.ok(Date.now() < deadline, `${ids.join(", ")} not handed over`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until nothing more has been handed to `worker` for 300 ms: notices still on their way are taken. */
async function handoversSettled(worker: ReturnType<typeof remoteWorker>) {
  let count = -1;
  while (count !== worker.handed.length) {
    count = worker.handed.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

test("deliveries an api process leases to a worker elsewhere are named to it even when the process is gone right after the commit", () =>
  onFreshSchema(async (open) => {
    const target = new URL(TEST_PG_URL);
    const proxy = await startSilenceableProxy(target.hostname, Number(target.port || 5432));
    try {
      const proxied = new URL(TEST_PG_URL);
      proxied.hostname = "127.0.0.1";
      proxied.port = String(proxy.port);
      const workerStore = await open();
      const api = await open({ handOverToWorkers: true, url: proxied.toString() });
      await api.insertWebhook(plainWebhook("wh_gone"));
      const worker = remoteWorker("worker-left-behind", roomy);
      workerStore.setLocalTaker(worker.taker);
      await triggerUntil(api, "warm", () => worker.handed.length > 0);
      await handoversSettled(worker);

      // The connection that stores the event is dropped at its next message after the insert, as
      // if the api process were killed once its trigger was committed.
      proxy.cutAfter("herald_insert_outgoing");
      await api.enqueueEvent(
        { id: "evt_gone", type: "user.created", body: "{}", createdAt: 1 },
        (active) => [...active],
        () => "del_gone",
      );
      // Within a second or two, not when the 30 s lease runs out.
      const [delivery] = await handedDeliveries(worker, ["del_gone"]);
      assert.equal(delivery?.eventId, "evt_gone");
    } finally {
      await proxy.close();
    }
  }));

test("a worker reads a webhook's secret once: later notices carry its deliveries whole, with the URL as it is now", () =>
  onFreshSchema(async (open, connect, schema) => {
    const { api, worker } = await apiAndRemoteWorker(open, "worker-carried", ["wh_carried"]);
    await triggerUntil(api, "first", () => worker.handed.length > 0);
    await handoversSettled(worker);
    // The worker knows the secret now. Changed behind Herald's back (Herald never changes one), it
    // is not read again: nothing of the next delivery is read...
    const db = await connect();
    await db.query(`UPDATE "${schema}".webhooks SET secret = 'changed' WHERE id = 'wh_carried'`);
    // ...and a new URL, set through Herald, comes with the notice.
    assert.ok(
      await api.updateWebhook({
        ...plainWebhook("wh_carried"),
        url: "https://example.org/new",
        updatedAt: 2,
      }),
    );
    await storeEvent(api, "evt_carried", () => "del_carried");
    const deliveries = await handedDeliveries(worker, ["del_carried"]);
    assert.deepEqual(
      deliveries.map((d) => [
        d.id,
        d.webhookId,
        d.eventId,
        d.eventType,
        d.url,
        d.secret,
        d.body,
        d.attempts,
      ]),
      [
        [
          "del_carried",
          "wh_carried",
          "evt_carried",
          "user.created",
          "https://example.org/new",
          "s",
          "{}",
          0,
        ],
      ],
    );
  }));

test("a worker of an earlier release, which does not say it takes deliveries carried whole, is named their ids", () =>
  onFreshSchema(async (open, connect, schema) => {
    const api = await open({ handOverToWorkers: true });
    await api.insertWebhook(plainWebhook("wh_old"));
    // The earlier release's worker: it tells its room without `carried`, and reads ids.
    const worker = await connect();
    const payloads: string[] = [];
    worker.on("notification", (message) => payloads.push(message.payload ?? ""));
    await worker.query(`LISTEN ${handoverChannel("worker-old")}`);
    const room = { deliveries: 1000, bodyLength: 10 ** 6, leaseMs: 30_000, fullWebhooks: [] };
    await worker.query("SELECT pg_notify($1, $2)", [
      roomChannel(schema),
      JSON.stringify({ worker: "worker-old", room }),
    ]);
    let n = 0;
    const deadline = Date.now() + 5000;
    while (payloads.length === 0) {
      assert.ok(Date.now() < deadline, "nothing was handed to the worker");
      await storeEvent(api, `evt_old_${++n}`, () => `del_old_${n}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(payloads[0] as string, /^del_old_\d+$/, "a list of ids, not a carried notice");
  }));

test("an event too large to be carried by a notice is read by id, whole", () =>
  onFreshSchema(async (open) => {
    const { api, worker } = await apiAndRemoteWorker(open, "worker-big", ["wh_big_1", "wh_big_2"]);
    await triggerUntil(api, "small", () => worker.handed.length > 0);
    const body = JSON.stringify({ text: "é".repeat(20_000) });
    let n = 0;
    await api.enqueueEvent(
      { id: "evt_big", type: "user.created", body, createdAt: 1 },
      (active) => [...active],
      () => `del_big_${++n}`,
    );
    const deliveries = await handedDeliveries(worker, ["del_big_1", "del_big_2"]);
    assert.deepEqual(
      deliveries.map((d) => [d.id, d.eventId, d.secret, d.body === body]),
      [
        ["del_big_1", "evt_big", "s", true],
        ["del_big_2", "evt_big", "s", true],
      ],
    );
  }));

test("an api process leaves to be claimed what a worker elsewhere has no room for: a full webhook's deliveries, and all once its room is spent", () =>
  onFreshSchema(async (open) => {
    // Room for two deliveries, told once.
    let told = false;
    const { api, worker } = await apiAndRemoteWorker(
      open,
      "worker-full",
      ["wh_free", "wh_full"],
      () => {
        if (told) return undefined;
        told = true;
        return { ...roomy(), deliveries: 2, fullWebhooks: ["wh_full"] };
      },
    );
    await triggerUntil(api, "spent", () => worker.handed.length > 0);
    assert.deepEqual(
      worker.handed.flatMap((h) => h.deliveries.map((d) => d.webhookId)),
      ["wh_free"],
      "only the webhook that is not full is handed over",
    );
    const claim = () => claimNow(api, 100);
    const waiting = await claim();
    assert.ok(waiting.some((d) => d.webhookId === "wh_full"));
    assert.ok(waiting.every((d) => !worker.handed[0]?.deliveries.some((h) => h.id === d.id)));
    // Room for one more delivery is left: it goes to this event's...
    await api.enqueueEvent(
      { id: "evt_fits", type: "user.created", body: "{}", createdAt: 1 },
      (active) => active.filter((w) => w.id === "wh_free"),
      () => "del_fits",
    );
    // ...then nothing does.
    await storeEvent(api, "evt_spent", () => `del_spent_${Math.random()}`);
    const after = await claim();
    assert.deepEqual(after.map((d) => d.eventId).sort(), ["evt_spent", "evt_spent"]);
  }));

test("deliveries handed to a worker that does not take them are given back, claimable at once", () =>
  onFreshSchema(async (open) => {
    const { api, worker } = await apiAndRemoteWorker(open, "worker-back", ["wh_back"]);
    await triggerUntil(api, "ready", () => worker.handed.length > 0);
    // The room is heard: this event is handed over, and refused.
    worker.refuse.add("evt_refused");
    const handedBefore = worker.handed.length;
    await storeEvent(api, "evt_refused", () => "del_refused");
    const deadline = Date.now() + 5000;
    let claimed: ClaimedDelivery[] = [];
    while (!claimed.some((d) => d.id === "del_refused")) {
      assert.ok(Date.now() < deadline, "the refused delivery never became claimable");
      await new Promise((resolve) => setTimeout(resolve, 20));
      claimed = await claimNow(api, 100);
    }
    assert.ok(
      worker.handed
        .slice(handedBefore)
        .some((h) => h.deliveries.some((d) => d.id === "del_refused")),
      "it was handed over before it was given back",
    );
  }));

test("a worker that stops tells no more room: new deliveries are no longer leased to it", () =>
  onFreshSchema(async (open) => {
    const { api, worker, workerStore } = await apiAndRemoteWorker(open, "worker-stopping", [
      "wh_stop",
    ]);
    await triggerUntil(api, "before", () => worker.handed.length > 0);
    workerStore.setLocalTaker(undefined);
    /** Whether event n's delivery is claimable as soon as it is stored (nobody leased it). */
    const claimableAtOnce = async (n: number) => {
      await storeEvent(api, `evt_after_${n}`, () => `del_after_${n}`);
      const claimed = await claimNow(api, 1000);
      return claimed.some((d) => d.id === `del_after_${n}`);
    };
    // The zero room it tells on stopping reaches the api process...
    const deadline = Date.now() + 5000;
    let n = 0;
    while (!(await claimableAtOnce(++n))) {
      assert.ok(Date.now() < deadline, "deliveries were still leased to a stopped worker");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // ...and from then on nothing is leased to it.
    for (let more = 0; more < 3; more++) assert.ok(await claimableAtOnce(++n));
  }));

test("workers in one schema are never handed deliveries of another schema of the same database", async () => {
  const other = await createTestSchema();
  const otherApi = await openPostgresStore({
    url: TEST_PG_URL,
    poolSize: 2,
    schema: other.schema,
    handOverToWorkers: true,
  });
  try {
    await onFreshSchema(async (open) => {
      const workerStore = await open();
      const api = await open({ handOverToWorkers: true });
      await api.insertWebhook(plainWebhook("wh_here"));
      await otherApi.insertWebhook(plainWebhook("wh_there"));
      const worker = remoteWorker("worker-here", roomy);
      workerStore.setLocalTaker(worker.taker);
      // Its own schema's api process hears its room and hands it deliveries...
      await triggerUntil(api, "here", () => worker.handed.length > 0);
      // ...while the other schema's, listening all along, leases it none of its own.
      for (let n = 0; n < 10; n++) {
        await storeEvent(otherApi, `evt_there_${n}`, () => `del_there_${n}`);
      }
      const claimed = await claimNow(otherApi, 100, "worker-there");
      assert.equal(claimed.length, 10, "every delivery of the other schema waits to be claimed");
      assert.ok(worker.handed.every((h) => h.deliveries.every((d) => d.webhookId === "wh_here")));
    });
  } finally {
    await otherApi.close();
    await other.drop();
  }
});

test("an api process that hears no delivery worker says nothing is delivered, and says when one is heard", () =>
  onFreshSchema(async (open, connect, schema) => {
    const { logger, lines } = capturedLogger("info");
    const api = await open({ handOverToWorkers: true, logger, noWorkerWarningMs: 300 });
    assert.equal(api.deliveryWorkersHeard?.(), 0);
    const said = (start: string) => lines.find((line) => String(line.msg).startsWith(start));
    const deadline = Date.now() + 5000;
    while (!said("No delivery worker has been heard from")) {
      assert.ok(Date.now() < deadline, "no warning that no worker is heard");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const warning = said("No delivery worker has been heard from");
    assert.equal(warning?.level, "warn");
    assert.match(
      String(warning?.msg),
      new RegExp(
        `for \\d+ s on this database \\(schema ${schema}\\)\\. .*HERALD_ROLE=worker \\(or all\\)`,
      ),
    );
    // A worker tells its room: the api process says deliveries are sent again.
    const worker = await connect();
    await worker.query("SELECT pg_notify($1, $2)", [
      roomChannel(schema),
      JSON.stringify({ worker: "worker-back", room: roomy(), carried: true }),
    ]);
    while (!said("A delivery worker is running again")) {
      assert.ok(Date.now() < deadline + 5000, "no line that a worker is heard again");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The count a metric shows.
    assert.equal(api.deliveryWorkersHeard?.(), 1);
    // A store that hands nothing over has no such count.
    assert.equal((await open()).deliveryWorkersHeard, undefined);
  }));
