import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogThrottle } from "../../src/domain/log-throttle.js";

test("a repeated line goes out once per interval per key, with the count of what it held back", () => {
  let now = 0;
  const throttle = createLogThrottle(10_000, () => now);
  assert.equal(throttle.due("xano"), 1);
  for (let i = 0; i < 5; i++) assert.equal(throttle.due("xano"), undefined);
  assert.equal(throttle.due("stripe"), 1, "another key has its own interval");
  now = 9_999;
  assert.equal(throttle.due("xano"), undefined);
  now = 10_000;
  assert.equal(throttle.due("xano"), 7, "the five held back, the one at 9,999 ms and this one");
  assert.equal(throttle.due("xano"), undefined);
  now = 25_000;
  assert.equal(throttle.due("xano"), 2);
});

test("a key forgotten once the trouble is over logs its next occurrence at once", () => {
  let now = 0;
  const throttle = createLogThrottle(30_000, () => now);
  assert.equal(throttle.due("claim"), 1);
  assert.equal(throttle.due("claim"), undefined);
  throttle.forget("claim");
  now = 1_000;
  assert.equal(throttle.due("claim"), 1, "a new outage, counted from its start");
});

test("what a burst held back is handed over once its interval is over, and counts as a line", () => {
  let now = 0;
  const throttle = createLogThrottle(10_000, () => now);
  throttle.due("burst");
  throttle.due("burst");
  throttle.due("burst");
  throttle.due("quiet");
  assert.deepEqual(throttle.held(), [], "within the interval, nothing yet");
  now = 10_000;
  assert.deepEqual(
    throttle.held(),
    [{ key: "burst", count: 2 }],
    "a key with nothing held is left",
  );
  assert.deepEqual(throttle.held(), []);
  assert.equal(throttle.due("burst"), undefined, "the handing over starts a new interval");
  now = 20_000;
  assert.equal(throttle.due("burst"), 2);
});
