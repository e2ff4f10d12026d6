import assert from "node:assert/strict";
import { test } from "node:test";
import { addToGroup, consecutiveRuns } from "../../src/domain/grouping.js";

test("consecutive items that belong together make one run, in order", () => {
  const items = [
    { event: "a", n: 1 },
    { event: "a", n: 2 },
    { event: "b", n: 3 },
    { event: "a", n: 4 },
    { event: "a", n: 5 },
    { event: "a", n: 6 },
  ];
  const runs = consecutiveRuns(items, (first, item) => first.event === item.event);
  assert.deepEqual(
    runs.map((run) => run.map((item) => item.n)),
    [[1, 2], [3], [4, 5, 6]],
  );
});

test("each item is compared with its run's first", () => {
  // 1, 2, 3 are each within 1 of the one before, but 3 is 2 away from 1.
  const runs = consecutiveRuns([1, 2, 3, 4], (first, item) => item - first <= 1);
  assert.deepEqual(runs, [
    [1, 2],
    [3, 4],
  ]);
});

test("no items make no runs", () => {
  assert.deepEqual(
    consecutiveRuns([], () => true),
    [],
  );
});

test("items added to a group keep their order, and each key gets a group of its own", () => {
  const groups = new Map<string, number[]>();
  for (const [key, n] of [
    ["a", 1],
    ["b", 2],
    ["a", 3],
  ] as const) {
    addToGroup(groups, key, n);
  }
  assert.deepEqual(
    [...groups],
    [
      ["a", [1, 3]],
      ["b", [2]],
    ],
  );
});
