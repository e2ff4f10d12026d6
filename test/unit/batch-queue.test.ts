import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { BatchQueue } from "../../src/adapters/storage/batch-queue.js";

/** A queue whose writes record their batches and answer each item doubled, after `writeMs`. */
function recordingQueue(
  options: {
    maxBatch?: number;
    lingerMs?: number;
    writeMs?: number;
    splitsAfter?: (error: unknown) => boolean;
  } = {},
) {
  const batches: number[][] = [];
  let writing = 0;
  let mostWriting = 0;
  const queue = new BatchQueue<number, number>({
    async run(items) {
      batches.push(items);
      writing++;
      mostWriting = Math.max(mostWriting, writing);
      await sleep(options.writeMs ?? 5);
      writing--;
      if (items.includes(-1)) throw new Error("refused");
      return items.map((item) => item * 2);
    },
    maxBatch: options.maxBatch ?? 100,
    maxInFlight: 2,
    ...(options.lingerMs === undefined ? {} : { lingerMs: options.lingerMs }),
    ...(options.splitsAfter === undefined ? {} : { splitsAfter: options.splitsAfter }),
  });
  return { queue, batches, mostWriting: () => mostWriting };
}

test("items queued in one turn go out in one batch, and each gets its own result", async () => {
  const { queue, batches } = recordingQueue();
  const results = await Promise.all([1, 2, 3].map((n) => queue.push(n)));
  assert.deepEqual(results, [2, 4, 6]);
  assert.deepEqual(batches, [[1, 2, 3]]);
});

test("at most two batches are written at once; what comes meanwhile waits for the next", async () => {
  const { queue, batches, mostWriting } = recordingQueue({ maxBatch: 2, writeMs: 20 });
  const results = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((n) => queue.push(n)));
  assert.deepEqual(results, [2, 4, 6, 8, 10, 12, 14]);
  assert.equal(mostWriting(), 2);
  assert.deepEqual(batches, [[1, 2], [3, 4], [5, 6], [7]]);
});

test("a refused batch is written again item by item: only the faulty item fails", async () => {
  const { queue, batches } = recordingQueue();
  const outcomes = await Promise.allSettled([1, -1, 3].map((n) => queue.push(n)));
  assert.deepEqual(
    outcomes.map((o) => (o.status === "fulfilled" ? o.value : "refused")),
    [2, "refused", 6],
  );
  assert.deepEqual(batches, [[1, -1, 3], [1], [-1], [3]]);
});

test("with a linger, items queued over a few milliseconds share one batch", async () => {
  const { queue, batches } = recordingQueue({ lingerMs: 300 });
  const pushed: Array<Promise<number>> = [];
  for (const n of [1, 2, 3]) {
    pushed.push(queue.push(n));
    await sleep(5);
  }
  assert.deepEqual(batches, [], "nothing is written before the linger ends");
  assert.deepEqual(await Promise.all(pushed), [2, 4, 6]);
  assert.deepEqual(batches, [[1, 2, 3]]);
});

test("with a linger, a batch that fills goes out at once", async () => {
  const { queue, batches } = recordingQueue({ maxBatch: 3, lingerMs: 10_000 });
  const started = Date.now();
  const results = await Promise.all([1, 2, 3].map((n) => queue.push(n)));
  assert.deepEqual(results, [2, 4, 6]);
  assert.deepEqual(batches, [[1, 2, 3]]);
  assert.ok(Date.now() - started < 5_000, "the full batch waited for the linger");
});

test("drain waits for a lingering batch to be written", async () => {
  const { queue, batches } = recordingQueue({ lingerMs: 30 });
  const pushed = queue.push(7);
  await queue.drain();
  assert.deepEqual(batches, [[7]]);
  assert.equal(await pushed, 14);
});

test("a batch that fails in a way splitsAfter refuses is not written again: every item gets its error", async () => {
  const seen: unknown[] = [];
  const { queue, batches } = recordingQueue({
    splitsAfter: (error) => {
      seen.push(error);
      return false;
    },
  });
  const outcomes = await Promise.allSettled([1, -1, 3].map((n) => queue.push(n)));
  assert.deepEqual(
    outcomes.map((o) => (o.status === "rejected" ? (o.reason as Error).message : o.value)),
    ["refused", "refused", "refused"],
  );
  assert.deepEqual(batches, [[1, -1, 3]]);
  assert.equal(seen.length, 1);
});
