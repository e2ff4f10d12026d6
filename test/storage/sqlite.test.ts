import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { openSqliteStore } from "../../src/adapters/storage/sqlite/sqlite-store.js";
import { describeStoreContract } from "./store-contract.js";

const HOOK = {
  id: "wh_1",
  name: "a",
  url: "https://example.com",
  events: ["user.created"],
  secret: "s",
  active: true,
  createdAt: 1,
  updatedAt: 1,
};

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

test("a restart frees every SQLite lease at once, since only one process uses the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  try {
    const first = openSqliteStore(path);
    await first.insertWebhook(HOOK);
    await first.enqueueEvent(
      { id: "evt_1", type: "user.created", body: "{}", createdAt: 1 },
      (a) => [...a],
      () => "del_1",
    );
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

test("attempts recorded before the latest attempt moved into the delivery row still show", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  const hook = { ...HOOK, id: "wh_old" };
  const attempt = (number: number, status: "pending" | "success", code: number) => ({
    deliveryId: "del_old",
    status,
    attempts: number,
    nextAttemptAt: status === "pending" ? 50 : null,
    attempt: {
      deliveryId: "del_old",
      attempt: number,
      startedAt: number * 10,
      durationMs: number,
      statusCode: code,
      error: status === "pending" ? "receiver answered 503; next attempt in 5 s" : null,
      responseHeaders: { "content-type": "text/plain" },
      responseBody: `answer ${number}`,
    },
  });
  try {
    const first = openSqliteStore(path);
    await first.insertWebhook(hook);
    await first.enqueueEvent(
      { id: "evt_old", type: "user.created", body: "{}", createdAt: 1 },
      (a) => [...a],
      () => "del_old",
    );
    await first.claimDueDeliveries({ now: 5, limit: 1, workerId: "w", leaseUntil: 1e15 });
    await first.recordAttempt(attempt(1, "pending", 503), "w");
    await first.close();

    // The shape earlier versions wrote: every attempt in the attempts table, none whole in the row.
    const raw = new Database(path);
    raw
      .prepare(
        `INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
         error, response_headers, response_body)
         SELECT id, attempts, last_attempt_at, last_duration_ms, last_status_code, last_error,
           last_response_headers, last_response_body FROM deliveries WHERE id = 'del_old'`,
      )
      .run();
    raw
      .prepare(
        "UPDATE deliveries SET last_duration_ms = NULL, last_response_headers = NULL WHERE id = 'del_old'",
      )
      .run();
    raw.close();

    const second = openSqliteStore(path);
    await second.claimDueDeliveries({ now: 50, limit: 1, workerId: "w", leaseUntil: 1e15 });
    await second.recordAttempt(attempt(2, "success", 200), "w");
    const detail = await second.getDelivery("wh_old", "del_old");
    await second.close();
    assert.deepEqual(
      detail?.attemptLog.map((a) => [a.attempt, a.statusCode, a.durationMs, a.responseBody]),
      [
        [1, 503, 1, "answer 1"],
        [2, 200, 2, "answer 2"],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
