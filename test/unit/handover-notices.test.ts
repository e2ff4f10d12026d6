import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type HandedOver,
  handoverChannel,
  handoverNotices,
} from "../../src/adapters/storage/postgres/worker-handover.js";

/** `webhooks` deliveries of event `evt_<n>`, with a body of `bodyLength` characters. */
function event(
  n: number,
  webhooks: number,
  bodyLength = 20,
  leaseUntil = 1_000,
  carried = true,
): HandedOver[] {
  const body = JSON.stringify({ n, pad: "é".repeat(Math.max(0, bodyLength - 20)) });
  return Array.from({ length: webhooks }, (_, w) => ({
    delivery: {
      id: `del_${n}_${w}`,
      webhookId: `wh_${w}`,
      eventId: `evt_${n}`,
      eventType: "user.created",
      url: `https://example.com/hook/${w}`,
      secret: `secret-${w}`,
      body,
      attempts: 0,
      createdAt: 5,
    },
    leaseUntil,
    carried,
  }));
}

interface Carried {
  w: Record<string, string>;
  e: Array<{ l: number; i: string; t: string; c: number; b: string; d: string[][] }>;
}

test("a notice carries each delivery whole but for its secret, which it never holds", () => {
  const { channels, payloads } = handoverNotices(new Map([["worker-1", event(1, 2)]]));
  assert.deepEqual(channels, [handoverChannel("worker-1")]);
  const notice = JSON.parse(payloads[0] as string) as Carried;
  assert.deepEqual(notice, {
    w: { wh_0: "https://example.com/hook/0", wh_1: "https://example.com/hook/1" },
    e: [
      {
        l: 1_000,
        i: "evt_1",
        t: "user.created",
        c: 5,
        b: event(1, 1)[0]?.delivery.body,
        d: [
          ["del_1_0", "wh_0"],
          ["del_1_1", "wh_1"],
        ],
      },
    ],
  });
  assert.ok(!(payloads[0] as string).includes("secret-"));
});

test("notices stay within 7,900 bytes, each event whole in one of them, each worker on its own channel", () => {
  const many = Array.from({ length: 60 }, (_, n) => event(n, 10, 300)).flat();
  const { channels, payloads } = handoverNotices(
    new Map([
      ["worker-1", many],
      ["worker-2", event(99, 3)],
    ]),
  );
  assert.ok(payloads.length > 2, "60 events of 10 deliveries fit no single notice");
  const seen: string[] = [];
  payloads.forEach((payload, i) => {
    assert.ok(
      Buffer.byteLength(payload) <= 7_900,
      `notice ${i} has ${Buffer.byteLength(payload)} bytes`,
    );
    const notice = JSON.parse(payload) as Carried;
    for (const e of notice.e) {
      for (const [id, webhookId] of e.d) {
        assert.ok(notice.w[webhookId as string], "the URL of every webhook is in the same notice");
        seen.push(`${channels[i] === handoverChannel("worker-2") ? "2" : "1"}:${id}`);
      }
    }
  });
  assert.deepEqual(seen, [
    ...many.map((h) => `1:${h.delivery.id}`),
    ...event(99, 3).map((h) => `2:${h.delivery.id}`),
  ]);
});

test("an event too large for a notice is named by its delivery ids, to be read", () => {
  const { payloads } = handoverNotices(
    new Map([["worker-1", [...event(1, 2), ...event(2, 3, 9_000), ...event(3, 1)]]]),
  );
  assert.equal(payloads.length, 2);
  const carried = JSON.parse(payloads[0] as string) as Carried;
  assert.deepEqual(
    carried.e.map((e) => e.i),
    ["evt_1", "evt_3"],
  );
  assert.equal(payloads[1], "del_2_0,del_2_1,del_2_2");
});

test("deliveries of one event under different leases are told apart", () => {
  const { payloads } = handoverNotices(
    new Map([["worker-1", [...event(1, 1, 20, 1_000), ...event(1, 1, 20, 2_000)]]]),
  );
  const carried = JSON.parse(payloads[0] as string) as Carried;
  assert.deepEqual(
    carried.e.map((e) => e.l),
    [1_000, 2_000],
  );
});

test("a worker that did not say it takes deliveries carried whole (an earlier release) is named ids", () => {
  const { channels, payloads } = handoverNotices(
    new Map([
      ["worker-old", event(1, 2, 20, 1_000, false)],
      ["worker-new", event(2, 1)],
    ]),
  );
  assert.deepEqual(channels, [handoverChannel("worker-old"), handoverChannel("worker-new")]);
  assert.equal(payloads[0], "del_1_0,del_1_1");
  assert.equal((JSON.parse(payloads[1] as string) as Carried).e[0]?.i, "evt_2");
});
