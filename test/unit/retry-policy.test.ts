import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { AttemptResult } from "../../src/domain/deliveries.js";
import {
  DEFAULT_RETRY_SCHEDULE,
  decideOutcome,
  parseDuration,
  parseRetryAfter,
  parseRetrySchedule,
  statusAfter,
} from "../../src/domain/retry-policy.js";
import { formatDelay } from "../../src/worker/delivery-worker.js";

function answered(status: number, retryAfterMs?: number): AttemptResult {
  return {
    startedAt: 0,
    durationMs: 5,
    response: { status, headers: {}, body: "" },
    error: undefined,
    retryAfterMs,
  };
}

const noResponse: AttemptResult = {
  startedAt: 0,
  durationMs: 15_000,
  response: undefined,
  error: "timed out",
  retryAfterMs: undefined,
};

const middle = () => 0.5;

describe("retry policy", () => {
  test("any 2xx is delivered", () => {
    for (const status of [200, 201, 204, 299]) {
      assert.deepEqual(decideOutcome(answered(status), 1, DEFAULT_RETRY_SCHEDULE, middle), {
        kind: "delivered",
      });
    }
  });

  test("408, 429, 5xx and no response are retried on the schedule", () => {
    for (const result of [
      answered(408),
      answered(429),
      answered(500),
      answered(503),
      answered(599),
      noResponse,
    ]) {
      assert.deepEqual(decideOutcome(result, 1, DEFAULT_RETRY_SCHEDULE, middle), {
        kind: "retry",
        delayMs: 5000,
      });
    }
  });

  test("other 4xx and 3xx give up at once", () => {
    for (const status of [400, 401, 403, 404, 410, 422, 301, 302]) {
      const outcome = decideOutcome(answered(status), 1, DEFAULT_RETRY_SCHEDULE, middle);
      assert.equal(outcome.kind, "give-up", `status ${status}`);
    }
  });

  test("a status beyond 599 gives up at once, as any other status that is not 2xx", () => {
    for (const status of [600, 999]) {
      const outcome = decideOutcome(answered(status), 1, DEFAULT_RETRY_SCHEDULE, middle);
      assert.equal(outcome.kind, "give-up", `status ${status}`);
      assert.match((outcome as { reason: string }).reason, /neither a success \(2xx\) nor retried/);
    }
  });

  test("only a status that sends the client elsewhere is called a redirect", () => {
    const reason = (status: number) =>
      (decideOutcome(answered(status), 1, DEFAULT_RETRY_SCHEDULE, middle) as { reason: string })
        .reason;
    for (const status of [301, 308]) assert.match(reason(status), /a lasting redirect/);
    for (const status of [302, 303, 307]) assert.match(reason(status), /a temporary redirect/);
    for (const status of [300, 304]) assert.doesNotMatch(reason(status), /redirect/);
  });

  test("a refusing status says what it most often means and where to look", () => {
    const reason = (status: number) =>
      (decideOutcome(answered(status), 1, DEFAULT_RETRY_SCHEDULE, middle) as { reason: string })
        .reason;
    assert.match(reason(401), /verifies with this webhook's secret/);
    assert.match(reason(404), /nothing at this URL\. Check the webhook's URL/);
    assert.match(reason(410), /gone for good/);
    assert.match(reason(413), /too large\. Raise its body size limit/);
    assert.match(reason(415), /Herald sends application\/json/);
    // Each ends by saying how to send the delivery again.
    for (const status of [400, 401, 403, 404, 405, 410, 413, 415, 418, 422]) {
      assert.match(
        reason(status),
        /then send it again with POST \/api\/webhooks/,
        `status ${status}`,
      );
    }
  });

  test("an attempt refused by policy (a blocked address) gives up at once", () => {
    const refused: AttemptResult = { ...noResponse, error: "refused to connect", refused: true };
    const outcome = decideOutcome(refused, 1, DEFAULT_RETRY_SCHEDULE, middle);
    assert.equal(outcome.kind, "give-up");
    assert.equal(statusAfter(outcome), "failed");
  });

  test("the default schedule is 5s, 5m, 30m, 2h, 5h, 10h, 10h: eight attempts in all", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7].map((n) => {
      const outcome = decideOutcome(answered(503), n, DEFAULT_RETRY_SCHEDULE, middle);
      assert.equal(outcome.kind, "retry");
      return outcome.kind === "retry" ? outcome.delayMs : 0;
    });
    assert.deepEqual(delays, [5e3, 3e5, 18e5, 72e5, 18e6, 36e6, 36e6]);
    assert.equal(decideOutcome(answered(503), 8, DEFAULT_RETRY_SCHEDULE, middle).kind, "give-up");
  });

  test("jitter stays within ±20 % of the scheduled delay", () => {
    const low = decideOutcome(answered(503), 2, DEFAULT_RETRY_SCHEDULE, () => 0);
    const high = decideOutcome(answered(503), 2, DEFAULT_RETRY_SCHEDULE, () => 0.999999);
    assert.deepEqual(low, { kind: "retry", delayMs: 240_000 });
    assert.equal(high.kind === "retry" && high.delayMs > 359_000 && high.delayMs <= 360_000, true);
  });

  test("Retry-After lengthens the scheduled wait, up to 24 h, and never shortens it", () => {
    // The schedule's first wait is 5 s (jitter pinned to none by `middle`).
    assert.deepEqual(decideOutcome(answered(429, 120_000), 1, DEFAULT_RETRY_SCHEDULE, middle), {
      kind: "retry",
      delayMs: 120_000,
      retryAfter: { held: "honoured" },
    });
    // A receiver asking for less than the schedule cannot spend the attempts in seconds.
    assert.deepEqual(decideOutcome(answered(503, 0), 1, DEFAULT_RETRY_SCHEDULE, middle), {
      kind: "retry",
      delayMs: 5000,
    });
    assert.deepEqual(decideOutcome(answered(503, 60_000), 2, DEFAULT_RETRY_SCHEDULE, middle), {
      kind: "retry",
      delayMs: 300_000,
    });
    assert.deepEqual(decideOutcome(answered(503, 1e12), 1, DEFAULT_RETRY_SCHEDULE, middle), {
      kind: "retry",
      delayMs: 86_400_000,
      retryAfter: { held: "capped", askedMs: 1e12 },
    });
    // A schedule's own wait beyond 24 h stays, whatever the header asks.
    assert.deepEqual(decideOutcome(answered(503, 1e12), 1, [3 * 86_400_000], middle), {
      kind: "retry",
      delayMs: 3 * 86_400_000,
    });
  });

  test("Retry-After does not extend the number of attempts", () => {
    assert.equal(decideOutcome(answered(429, 1000), 3, [1000, 1000], middle).kind, "give-up");
  });

  test("statusAfter maps outcomes to delivery statuses", () => {
    assert.equal(statusAfter({ kind: "delivered" }), "success");
    assert.equal(statusAfter({ kind: "retry", delayMs: 1 }), "pending");
    assert.equal(statusAfter({ kind: "give-up", reason: "x" }), "failed");
  });
});

describe("parsing", () => {
  test("Retry-After is read as seconds or as an HTTP date", () => {
    const now = Date.parse("2025-12-05T07:00:00Z");
    assert.equal(parseRetryAfter("120", now), 120_000);
    assert.equal(parseRetryAfter("Fri, 05 Dec 2025 07:01:00 GMT", now), 60_000);
    assert.equal(parseRetryAfter("Friday, 05-Dec-25 07:02:00 GMT", now), 120_000);
    // A date not in the future, a negative number or a bare year leave the schedule in charge.
    assert.equal(parseRetryAfter("Fri, 05 Dec 2025 06:00:00 GMT", now), undefined);
    assert.equal(parseRetryAfter("-5", now), undefined);
    assert.equal(parseRetryAfter("2030", now), 2030_000);
    assert.equal(parseRetryAfter("1.5", now), undefined);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  test("durations take ms, s, m, h and d; bare numbers are seconds below 1000, milliseconds above", () => {
    assert.equal(parseDuration("250ms"), 250);
    assert.equal(parseDuration("15s"), 15_000);
    assert.equal(parseDuration("5m"), 300_000);
    assert.equal(parseDuration("2h"), 7_200_000);
    assert.equal(parseDuration("1d"), 86_400_000);
    assert.equal(parseDuration("3"), 3000);
    assert.equal(parseDuration("15000"), 15_000);
    assert.equal(parseDuration("2000"), 2000);
    assert.equal(parseDuration("fast"), undefined);
    assert.equal(parseDuration("-5s"), undefined);
  });

  test("a schedule is a comma-separated list of durations; numbers alone must agree on their unit", () => {
    assert.deepEqual(parseRetrySchedule("5s, 5m,30m"), [5000, 300_000, 1_800_000]);
    assert.deepEqual(parseRetrySchedule("1,2,5"), [1000, 2000, 5000]);
    assert.deepEqual(parseRetrySchedule("1000,2000,4000"), [1000, 2000, 4000]);
    assert.deepEqual(parseRetrySchedule("5,2000ms"), [5000, 2000]);
    assert.deepEqual(parseRetrySchedule("5,300,1800"), { ambiguous: true });
    assert.deepEqual(parseRetrySchedule("500,1000,2000"), { ambiguous: true });
    assert.deepEqual(parseRetrySchedule("5s,later"), { invalid: "later" });
    assert.deepEqual(parseRetrySchedule("5s,,5m"), { invalid: "" });
    assert.deepEqual(parseRetrySchedule("5s,"), { invalid: "" });
  });
});

test("delays are written in a readable unit", () => {
  assert.equal(formatDelay(250), "250 ms");
  assert.equal(formatDelay(5000), "5 s");
  assert.equal(formatDelay(1_800_000), "30 min");
  assert.equal(formatDelay(36_000_000), "10 h");
});
