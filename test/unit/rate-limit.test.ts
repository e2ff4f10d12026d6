import assert from "node:assert/strict";
import { test } from "node:test";
import { RateLimiter } from "../../src/domain/rate-limit.js";

/** A limiter on a clock the test moves by hand. */
function limiter() {
  let now = 1_000_000;
  const rateLimiter = new RateLimiter({ now: () => now });
  return { rateLimiter, advance: (ms: number) => (now += ms) };
}

test("a bucket holds two seconds' worth of requests, then asks to wait", () => {
  const { rateLimiter } = limiter();
  for (let i = 0; i < 4; i++) assert.equal(rateLimiter.take("s", 2), 0, `request ${i + 1}`);
  assert.equal(rateLimiter.take("s", 2), 1);
  assert.equal(rateLimiter.take("other", 2), 0, "each key has its own bucket");
});

test("the bucket refills with time, and a slow rate asks for a longer wait", () => {
  const { rateLimiter, advance } = limiter();
  assert.equal(rateLimiter.take("slow", 0.25), 0);
  assert.equal(rateLimiter.take("slow", 0.25), 4);
  advance(4_000);
  assert.equal(rateLimiter.take("slow", 0.25), 0);
});

test("check says whether a request would pass without using the rate up", () => {
  const { rateLimiter } = limiter();
  for (let i = 0; i < 10; i++) assert.equal(rateLimiter.check("s", 1), 0);
  assert.equal(rateLimiter.take("s", 1), 0);
  assert.equal(rateLimiter.take("s", 1), 0);
  assert.equal(rateLimiter.check("s", 1), 1);
  assert.equal(rateLimiter.take("s", 1), 1);
});
