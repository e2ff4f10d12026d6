import assert from "node:assert/strict";
import { test } from "node:test";
import { Queue } from "../../src/worker/queue.js";

test("the queue gives items back in the order they came, across its compactions", () => {
  const queue = new Queue<number>();
  const taken: number[] = [];
  let next = 0;
  // Pushes and takes interleaved so that the queue compacts many times while never emptying.
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 300; i++) queue.push(next++);
    for (let i = 0; i < 250; i++) taken.push(queue.take());
  }
  assert.equal(queue.length, next - taken.length);
  taken.push(...queue.takeAll());
  assert.equal(queue.length, 0);
  assert.deepEqual(
    taken,
    Array.from({ length: next }, (_, i) => i),
  );
});

test("an emptied queue starts afresh", () => {
  const queue = new Queue<string>();
  queue.push("a");
  assert.equal(queue.take(), "a");
  assert.equal(queue.length, 0);
  queue.push("b");
  queue.push("c");
  assert.equal(queue.length, 2);
  assert.deepEqual(queue.takeAll(), ["b", "c"]);
});
