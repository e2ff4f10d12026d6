import assert from "node:assert/strict";
import { test } from "node:test";
import { FairQueue } from "../../src/worker/fair-queue.js";

const queueOf = (items: string[]) => {
  // Items are "key:n"; the key is the part before the colon.
  const queue = new FairQueue<string>((item) => item.split(":")[0] as string);
  for (const item of items) queue.push(item);
  return queue;
};
const always = () => true;

test("keys are served in turn, each in first-in-first-out order", () => {
  const queue = queueOf(["a:1", "a:2", "a:3", "b:1", "c:1", "b:2"]);
  const taken: string[] = [];
  for (let item = queue.take(always); item !== undefined; item = queue.take(always)) {
    taken.push(item);
  }
  assert.deepEqual(taken, ["a:1", "b:1", "c:1", "a:2", "b:2", "a:3"]);
  assert.equal(queue.length, 0);
});

test("a key that is not allowed keeps its items and its place; the others go ahead", () => {
  const queue = queueOf(["slow:1", "slow:2", "fast:1", "fast:2"]);
  const notSlow = (key: string) => key !== "slow";
  assert.equal(queue.take(notSlow), "fast:1");
  assert.equal(queue.take(notSlow), "fast:2");
  assert.equal(queue.take(notSlow), undefined);
  assert.equal(queue.length, 2);
  assert.equal(queue.lengthOf("slow"), 2);
  assert.deepEqual([...queue.keys()], ["slow"]);
  assert.equal(queue.take(always), "slow:1");
});

test("takeAll empties every line", () => {
  const queue = queueOf(["a:1", "b:1", "a:2"]);
  assert.deepEqual(queue.takeAll().sort(), ["a:1", "a:2", "b:1"]);
  assert.equal(queue.length, 0);
  assert.equal(queue.take(always), undefined);
  queue.push("c:1");
  assert.equal(queue.take(always), "c:1");
});

test("takeAllOf empties one key's line and leaves the others their turns", () => {
  const queue = queueOf(["a:1", "b:1", "a:2", "c:1", "b:2"]);
  assert.deepEqual(queue.takeAllOf("b"), ["b:1", "b:2"]);
  assert.deepEqual(queue.takeAllOf("b"), []);
  assert.equal(queue.length, 3);
  assert.equal(queue.lengthOf("b"), 0);
  queue.push("b:3");
  const taken: string[] = [];
  for (let item = queue.take(always); item !== undefined; item = queue.take(always)) {
    taken.push(item);
  }
  assert.deepEqual(taken, ["a:1", "c:1", "b:3", "a:2"]);
});
