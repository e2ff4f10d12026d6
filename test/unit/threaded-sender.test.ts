import assert from "node:assert/strict";
import { test } from "node:test";
import { createThreadedSender } from "../../src/adapters/threaded-sender.js";
import type { ClaimedDelivery } from "../../src/domain/deliveries.js";

function delivery(id: string): ClaimedDelivery {
  return {
    id,
    webhookId: "wh_1",
    eventId: "evt_1",
    eventType: "user.created",
    url: "http://127.0.0.1:9/",
    secret: "s",
    body: "{}",
    attempts: 0,
    createdAt: 1,
  };
}

test("a delivery thread that stops fails its attempts in flight and is replaced", {
  timeout: 20_000,
}, async () => {
  const sender = createThreadedSender({
    threads: 1,
    clock: { now: () => 1000 },
    timeoutMs: 1000,
    allowPrivateTargets: true,
    userAgent: "Herald/test",
    entry: new URL("../support/fragile-sender-thread.ts", import.meta.url),
  });
  try {
    const first = await sender.send(delivery("del_a"));
    assert.equal(first.response?.body, "sent del_a");

    // One attempt waits in the thread when it stops; the one that stops it fails too.
    const held = sender.send(delivery("hold_1"));
    const crash = sender.send(delivery("crash"));
    for (const result of await Promise.all([held, crash])) {
      assert.equal(result.response, undefined);
      assert.match(result.error ?? "", /delivery thread stopped \(exit code 1\)/);
    }

    const after = await sender.send(delivery("del_b"));
    assert.equal(after.response?.body, "sent del_b", "the replacement thread sends");
  } finally {
    await sender.close();
  }
});
