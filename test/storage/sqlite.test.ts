import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { SQLITE_MIGRATIONS } from "../../src/adapters/storage/sqlite/migrations.js";
import {
  DatabaseInUseError,
  openSqliteStore,
} from "../../src/adapters/storage/sqlite/sqlite-store.js";
import type { Webhook } from "../../src/domain/webhooks.js";
import { plainWebhook, storeOneDelivery } from "../support/fixtures.js";
import { capturedLogger } from "../support/log-capture.js";
import { checkEarlierAttemptsShow } from "./earlier-attempts.js";
import { describeStoreContract } from "./store-contract.js";

describeStoreContract("SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  let store = openSqliteStore(path);
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = openSqliteStore(path);
      return store;
    },
    async destroy() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

test("a new database file, and its write-ahead log, are readable by their owner alone", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  const previous = process.umask(0o022);
  try {
    const store = openSqliteStore(path);
    await store.insertWebhook(plainWebhook("wh_1"));
    for (const file of [path, `${path}-wal`]) {
      assert.ok(existsSync(file), file);
      assert.equal(statSync(file).mode & 0o777, 0o600, file);
    }
    await store.close();
  } finally {
    process.umask(previous);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a restart frees every SQLite lease at once, since only one process uses the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  try {
    const first = openSqliteStore(path);
    await storeOneDelivery(first, "1");
    assert.equal(
      (await first.claimDueDeliveries({ now: 5, limit: 5, workerId: "w", leaseUntil: 1e15 }))
        .length,
      1,
    );
    await first.close();
    const second = openSqliteStore(path);
    const claimed = await second.claimDueDeliveries({
      now: 5,
      limit: 5,
      workerId: "w2",
      leaseUntil: 1e15,
    });
    await second.close();
    assert.deepEqual(
      claimed.map((d) => d.id),
      ["del_1"],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a file made by an earlier release with other indexes is brought to a new file's indexes, and the upgrade is told", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  const indexes = () => {
    const db = new Database(path, { readonly: true });
    const rows = db
      .prepare<[], { name: string; sql: string }>(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
      )
      .all();
    db.close();
    return rows;
  };
  try {
    await openSqliteStore(path).close();
    const fresh = indexes();
    const release = SQLITE_MIGRATIONS.length;
    // As such a release left it: no due-time index, two leftover indexes of incoming webhooks.
    const db = new Database(path);
    db.exec(`
      DROP INDEX deliveries_due;
      CREATE INDEX incoming_by_time ON incoming_events(received_at);
      CREATE INDEX incoming_by_status ON incoming_events(status, seq);
    `);
    db.pragma(`user_version = ${release - 1}`);
    db.close();
    assert.notDeepEqual(indexes(), fresh);
    const { logger, lines } = capturedLogger("info");
    await openSqliteStore(path, { logger }).close();
    assert.deepEqual(indexes(), fresh);
    assert.deepEqual(
      lines.map((line) => [line.level, line.msg]),
      [
        [
          "info",
          `Upgraded the database's schema from version ${release - 1} to ${release} (1 migration applied); what it held is kept.`,
        ],
      ],
    );
    // A newer release's file: nothing changes, and the warning says so.
    const newer = new Database(path);
    newer.pragma(`user_version = ${release + 1}`);
    newer.close();
    const told = capturedLogger("info");
    await openSqliteStore(path, { logger: told.logger }).close();
    assert.equal(told.lines.length, 1);
    assert.equal(told.lines[0]?.level, "warn");
    assert.match(
      String(told.lines[0]?.msg),
      new RegExp(`^The database's schema is at version ${release + 1}, newer than this release`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("while a webhook with a long history is deleted, other writes commit, not after all of it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  const store = openSqliteStore(path);
  try {
    await store.insertWebhook(plainWebhook("wh_long"));
    await store.insertWebhook(plainWebhook("wh_other"));
    const only = (id: string) => (active: readonly Webhook[]) => active.filter((w) => w.id === id);
    let n = 0;
    const enqueueFor = (id: string) =>
      store.enqueueEvent(
        { id: `evt_${++n}`, type: "user.created", body: "{}", createdAt: 1 },
        only(id),
        () => `del_${n}`,
      );
    await Promise.all(Array.from({ length: 4000 }, () => enqueueFor("wh_long")));
    // Read as the trigger's commit is reported: a delete in one write has taken all 4,000 by then.
    const reader = new Database(path, { readonly: true });
    const count = reader.prepare<[], { n: number }>(
      "SELECT COUNT(*) AS n FROM deliveries WHERE webhook_id = 'wh_long'",
    );
    const deleted = store.deleteWebhook("wh_long");
    await enqueueFor("wh_other");
    const leftAtTrigger = count.get()?.n ?? -1;
    assert.equal(await deleted, true);
    assert.ok(leftAtTrigger > 0, `the delete had taken the whole history (${leftAtTrigger} left)`);
    assert.equal(count.get()?.n, 0);
    reader.close();
    const left = await store.claimDueDeliveries({
      now: 5,
      limit: 10,
      workerId: "w",
      leaseUntil: 9,
    });
    assert.deepEqual(
      left.map((d) => d.webhookId),
      ["wh_other"],
    );
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("attempts recorded before the latest attempt moved into the delivery row still show", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  try {
    await checkEarlierAttemptsShow(
      async () => openSqliteStore(path),
      async (sql) => {
        const raw = new Database(path);
        try {
          raw.exec(sql);
        } finally {
          raw.close();
        }
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a second process on the same SQLite file refuses to start; after the first one is killed, a new one starts at once", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  // Another process, as the lock is the operating system's and per process.
  const holder = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `import { openSqliteStore } from ${JSON.stringify(new URL("../../src/adapters/storage/sqlite/sqlite-store.ts", import.meta.url).href)};
       openSqliteStore(${JSON.stringify(path)}); console.log("open"); setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout?.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("open")) resolve();
      });
      holder.once("exit", (code) => reject(new Error(`the holder exited with ${code}`)));
    });
    assert.throws(
      () => openSqliteStore(path),
      (error: unknown) =>
        error instanceof DatabaseInUseError &&
        /Another Herald process is using/.test(error.message),
    );
    holder.kill("SIGKILL");
    await once(holder, "exit");
    const store = openSqliteStore(path);
    await store.close();
  } finally {
    holder.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("upgrading links the events that incoming webhooks were already routed to", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  try {
    // A database as the version before the link was stored left it.
    const old = new Database(path);
    SQLITE_MIGRATIONS.slice(0, 4).forEach((migration, version) => {
      old.exec(migration);
      old.pragma(`user_version = ${version + 1}`);
    });
    old
      .prepare(
        "INSERT INTO events (id, type, body, created_at) VALUES (?, 'user.created', '{}', ?)",
      )
      .run("evt_routed", 10);
    old
      .prepare(
        "INSERT INTO events (id, type, body, created_at) VALUES (?, 'user.created', '{}', ?)",
      )
      .run("evt_triggered", 20);
    old
      .prepare(
        `INSERT INTO incoming_events (id, service, headers, raw_body, verified_by, status,
         outgoing_event_id, received_at) VALUES ('evt_in', 'xano', '{}', x'7b7d', 'xano', 'routed',
         'evt_routed', 5)`,
      )
      .run();
    old.close();

    const store = openSqliteStore(path);
    assert.deepEqual(await store.routedEvents("evt_in", 10), [
      { id: "evt_routed", type: "user.created", createdAt: 10 },
    ]);
    assert.equal((await store.getEvent("evt_routed"))?.incomingEventId, "evt_in");
    assert.equal((await store.getEvent("evt_triggered"))?.incomingEventId, undefined);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
