/**
 * Deliveries written by versions that kept every attempt in the attempts table, and none whole in
 * the delivery's row: a store must still show all their attempts once it records the next one.
 */
import assert from "node:assert/strict";
import type { DeliveryUpdate } from "../../src/domain/deliveries.js";
import type { Store } from "../../src/domain/ports.js";
import { storeOneDelivery } from "../support/fixtures.js";

/** Turns delivery `del_old` into the shape earlier versions wrote. */
const EARLIER_SHAPE = [
  `INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
   error, response_headers, response_body)
   SELECT id, attempts, last_attempt_at, last_duration_ms, last_status_code, last_error,
     last_response_headers, last_response_body FROM deliveries WHERE id = 'del_old'`,
  "UPDATE deliveries SET last_duration_ms = NULL, last_response_headers = NULL WHERE id = 'del_old'",
];

function attempt(number: number, status: "pending" | "success", code: number): DeliveryUpdate {
  return {
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
  };
}

/**
 * Records a first attempt, rewrites it in the earlier shape with `run` (the store closed), then
 * records a second one on a reopened store and checks that both show.
 */
export async function checkEarlierAttemptsShow(
  open: () => Promise<Store>,
  run: (sql: string) => Promise<void>,
): Promise<void> {
  const first = await open();
  await storeOneDelivery(first, "old");
  await first.claimDueDeliveries({ now: 5, limit: 1, workerId: "w", leaseUntil: 1e15 });
  await first.recordAttempt(attempt(1, "pending", 503), "w");
  await first.close();

  for (const sql of EARLIER_SHAPE) await run(sql);

  const second = await open();
  try {
    await second.claimDueDeliveries({ now: 50, limit: 1, workerId: "w", leaseUntil: 1e15 });
    await second.recordAttempt(attempt(2, "success", 200), "w");
    const detail = await second.getDelivery("wh_old", "del_old");
    assert.deepEqual(
      detail?.attemptLog.map((a) => [a.attempt, a.statusCode, a.durationMs, a.responseBody]),
      [
        [1, 503, 1, "answer 1"],
        [2, 200, 2, "answer 2"],
      ],
    );
  } finally {
    await second.close();
  }
}
