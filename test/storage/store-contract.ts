/** The behaviour every store must show; each store's test file runs it against a real database. */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import {
  type ClaimedDelivery,
  type DeliveryUpdate,
  DUE_SOON_MS,
} from "../../src/domain/deliveries.js";
import type { IncomingEvent } from "../../src/domain/incoming.js";
import type { Store } from "../../src/domain/ports.js";
import type { Source } from "../../src/domain/sources.js";
import type { Webhook } from "../../src/domain/webhooks.js";

export interface StoreFixture {
  store: Store;
  /** Closes the store and removes its data. */
  destroy(): Promise<void>;
  /** Closes and reopens the same data, as a restart would. */
  reopen(): Promise<Store>;
}

let counter = 0;
function webhook(overrides: Partial<Webhook> = {}): Webhook {
  counter++;
  return {
    id: `wh_${counter}_test`,
    name: `hook ${counter}`,
    url: `https://example.com/${counter}`,
    events: ["user.created"],
    secret: `secret-${counter}`,
    active: true,
    createdAt: 1000 + counter,
    updatedAt: 1000 + counter,
    ...overrides,
  };
}

function success(deliveryId: string, attempt: number, at: number): DeliveryUpdate {
  return {
    deliveryId,
    status: "success",
    attempts: attempt,
    nextAttemptAt: null,
    attempt: {
      deliveryId,
      attempt,
      startedAt: at,
      durationMs: 3,
      statusCode: 200,
      error: null,
      responseHeaders: { "content-type": "text/plain" },
      responseBody: "OK",
    },
  };
}

const everyone = (active: readonly Webhook[]) => [...active];

function incoming(overrides: Partial<IncomingEvent> = {}): IncomingEvent {
  return {
    id: `evt_in_${++counter}`,
    service: "xano",
    eventName: null,
    dedupeKey: null,
    headers: {},
    rawBody: Buffer.from('{"a":1}'),
    contentType: "application/json",
    verifiedBy: "x-webhook-signature",
    verified: true,
    status: "received",
    outgoingEventId: null,
    routeError: null,
    receivedAt: 1,
    ...overrides,
  };
}

function source(overrides: Partial<Source> = {}): Source {
  return {
    name: `src-${++counter}`,
    verifier: {
      type: "hmac",
      algorithm: "sha512",
      encoding: "base64",
      header: "x-sig",
      signedContent: "body",
    },
    secret: "source-secret",
    rules: [
      {
        event: "record.created",
        where: { "data.table": "users" },
        emit: "user.created",
        data: "data.record",
      },
    ],
    settings: { toleranceSeconds: 300, maxBodyBytes: 1024, rateLimitPerSecond: 5 },
    createdAt: 10,
    updatedAt: 10,
    ...overrides,
  };
}

/** Registers the store contract tests. */
export function describeStoreContract(name: string, open: () => Promise<StoreFixture>): void {
  describe(`${name} store`, () => {
    let fixture: StoreFixture;
    let store: Store;
    let ids = 0;
    const nextId = () => `del_${++ids}_t`;

    beforeEach(async () => {
      fixture = await open();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.destroy();
    });

    /** Stores an event of type user.created for every active webhook. */
    const enqueue = (id: string, createdAt: number, body = "{}") =>
      store.enqueueEvent({ id, type: "user.created", body, createdAt }, everyone, nextId);
    const claim = (workerId: string, now: number, leaseUntil: number, limit: number) =>
      store.claimDueDeliveries({ now, limit, workerId, leaseUntil });

    /** Registers `w`, stores one event for it and claims its delivery as worker "w". */
    async function claimOneFor(w: Webhook, eventId: string): Promise<ClaimedDelivery> {
      await store.insertWebhook(w);
      await enqueue(eventId, 1);
      const [claimed] = await claim("w", 10, 100, 1);
      assert.ok(claimed);
      return claimed;
    }

    test("keeps webhooks with every field, and lists them in creation order", async () => {
      const a = webhook();
      const b = webhook({ active: false, events: ["user.created", "auth.login"] });
      await store.insertWebhook(b);
      await store.insertWebhook(a);
      assert.deepEqual(await store.getWebhook(b.id), b);
      assert.deepEqual(
        (await store.listWebhooks()).map((w) => w.id),
        [a, b].sort((x, y) => x.createdAt - y.createdAt).map((w) => w.id),
      );
      assert.equal(await store.getWebhook("wh_missing"), undefined);
    });

    test("pages webhooks in creation order, ties by id, with a cursor", async () => {
      const made = [
        webhook({ id: "wh_b", createdAt: 5 }),
        webhook({ id: "wh_a", createdAt: 5 }),
        webhook({ id: "wh_c", createdAt: 3 }),
        webhook({ id: "wh_d", createdAt: 9 }),
        webhook({ id: "wh_e", createdAt: 7 }),
      ];
      for (const w of made) await store.insertWebhook(w);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.pageWebhooks(
          cursor === undefined ? { limit: 2 } : { limit: 2, cursor },
        );
        seen.push(...page.webhooks.map((w) => w.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== undefined && pages < 10);
      assert.deepEqual(seen, ["wh_c", "wh_a", "wh_b", "wh_e", "wh_d"]);
      assert.equal(pages, 3);
      assert.deepEqual(
        (await store.listWebhooks()).map((w) => w.id),
        seen,
      );
      const whole = await store.pageWebhooks({ limit: 5 });
      assert.equal(whole.webhooks.length, 5);
      assert.equal(whole.nextCursor, undefined);
      assert.deepEqual(whole.webhooks[0], made[2]);
    });

    test("updates and deletes webhooks, reporting whether they existed", async () => {
      const a = webhook();
      await store.insertWebhook(a);
      const changed = { ...a, name: "renamed", active: false, updatedAt: a.updatedAt + 5 };
      assert.equal(await store.updateWebhook(changed), true);
      assert.deepEqual(await store.getWebhook(a.id), changed);
      assert.equal(await store.updateWebhook({ ...changed, id: "wh_missing" }), false);
      assert.equal(await store.deleteWebhook(a.id), true);
      assert.equal(await store.deleteWebhook(a.id), false);
      assert.equal(await store.getWebhook(a.id), undefined);
    });

    test("enqueues one delivery per selected active webhook, in one step", async () => {
      const a = webhook();
      const b = webhook();
      const paused = webhook({ active: false });
      for (const w of [a, b, paused]) await store.insertWebhook(w);
      let seen: string[] = [];
      const count = await store.enqueueEvent(
        { id: "evt_1", type: "user.created", body: '{"event":"user.created"}', createdAt: 5000 },
        (active) => {
          seen = active.map((w) => w.id);
          return active.filter((w) => w.id === a.id);
        },
        nextId,
      );
      assert.equal(count, 1);
      assert.deepEqual(seen.sort(), [a.id, b.id].sort());
      const claimed = await claim("w1", 5000, 9000, 10);
      assert.equal(claimed.length, 1);
      assert.equal(claimed[0]?.webhookId, a.id);
      assert.equal(claimed[0]?.url, a.url);
      assert.equal(claimed[0]?.secret, a.secret);
      assert.equal(claimed[0]?.body, '{"event":"user.created"}');
      assert.equal(claimed[0]?.attempts, 0);
      assert.deepEqual(await store.getEvent("evt_1"), {
        id: "evt_1",
        type: "user.created",
        body: '{"event":"user.created"}',
        createdAt: 5000,
      });
      assert.equal(await store.getEvent("evt_none"), undefined);
    });

    test("many concurrent enqueues all commit", async () => {
      await store.insertWebhook(webhook());
      const counts = await Promise.all(
        Array.from({ length: 200 }, (_, i) => enqueue(`evt_c${i}`, 1)),
      );
      assert.equal(
        counts.reduce((sum, n) => sum + n, 0),
        200,
      );
      const claimed = await claim("w", 10, 100, 500);
      assert.equal(claimed.length, 200);
    });

    test("a claim can skip the deliveries of some webhooks, fresh or with an expired lease", async () => {
      const busy = webhook();
      const other = webhook();
      for (const w of [busy, other]) await store.insertWebhook(w);
      await enqueue("evt_s1", 100);
      const claim = (now: number, skipWebhooks: string[]) =>
        store.claimDueDeliveries({
          now,
          limit: 10,
          workerId: "w",
          leaseUntil: now + 100,
          skipWebhooks,
        });
      assert.deepEqual(
        (await claim(100, [busy.id])).map((d) => d.webhookId),
        [other.id],
      );
      assert.deepEqual(await claim(100, [busy.id]), []);
      assert.deepEqual(
        (await claim(150, [])).map((d) => d.webhookId),
        [busy.id],
      );
      // Once its lease has run out, the skipped webhook's delivery is still skipped.
      await store.releaseExpiredLeases(300);
      assert.deepEqual(await claim(300, [busy.id, other.id]), []);
      assert.deepEqual(
        (await claim(300, [other.id])).map((d) => d.webhookId),
        [busy.id],
      );
    });

    test("a claim that skips a webhook with a long backlog takes the others' oldest due first, past those held", async () => {
      const slow = webhook();
      const a = webhook();
      const b = webhook();
      const paused = webhook();
      for (const w of [slow, a, b, paused]) await store.insertWebhook(w);
      const to =
        (...targets: Webhook[]) =>
        (active: readonly Webhook[]) =>
          active.filter((w) => targets.some((t) => t.id === w.id));
      const store1 = (id: string, at: number, ...targets: Webhook[]) =>
        store.enqueueEvent(
          { id, type: "user.created", body: "{}", createdAt: at },
          to(...targets),
          nextId,
        );
      // A paused webhook's delivery waits, however old.
      await store1("evt_paused", 5, paused);
      await store.updateWebhook({ ...paused, active: false });
      // The slow receiver's backlog comes first in due order; a and b interleave after it.
      for (let i = 0; i < 300; i++) await store1(`evt_bk${i}`, 10 + i, slow);
      for (let i = 0; i < 4; i++) {
        await store1(`evt_a${i}`, 1000 + 2 * i, a);
        await store1(`evt_b${i}`, 1001 + 2 * i, b);
      }
      await store1("evt_later", 5000, a, b);
      const claimSkipping = (limit: number) =>
        store.claimDueDeliveries({
          now: 2000,
          limit,
          workerId: "w",
          leaseUntil: 9000,
          skipWebhooks: [slow.id],
        });
      const first = await claimSkipping(3);
      assert.deepEqual(
        first.map((d) => d.eventId),
        ["evt_a0", "evt_b0", "evt_a1"],
      );
      const rest = await claimSkipping(10);
      assert.deepEqual(
        rest.map((d) => d.eventId),
        ["evt_b1", "evt_a2", "evt_b2", "evt_a3", "evt_b3"],
        "held deliveries are passed over, not due ones are left",
      );
      assert.deepEqual(await claimSkipping(10), []);
    });

    test("claims only due deliveries, oldest due first, and never hands a leased one out twice", async () => {
      await store.insertWebhook(webhook());
      for (let i = 0; i < 5; i++) {
        await enqueue(`evt_d${i}`, 100 + i);
      }
      assert.equal((await claim("w", 99, 500, 10)).length, 0);
      const first = await claim("w", 102, 500, 2);
      assert.deepEqual(
        first.map((d) => d.eventId),
        ["evt_d0", "evt_d1"],
      );
      const second = await claim("w", 200, 500, 10);
      assert.deepEqual(
        second.map((d) => d.eventId),
        ["evt_d2", "evt_d3", "evt_d4"],
      );
      assert.equal((await claim("w", 200, 500, 10)).length, 0);
      // An expired lease makes the delivery claimable again.
      assert.equal((await claim("w", 501, 900, 10)).length, 5);
    });

    test("pending deliveries of an inactive webhook wait until it is active again", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_p", 1);
      await store.updateWebhook({ ...w, active: false });
      assert.equal((await claim("w", 10, 20, 10)).length, 0);
      assert.equal(await store.nextDueAt(0), undefined);
      assert.deepEqual(await store.countPendingDeliveries(10), { due: 0, later: 0, held: 0 });
      await store.updateWebhook({ ...w, active: true });
      assert.deepEqual(await store.countPendingDeliveries(10), { due: 1, later: 0, held: 0 });
      assert.equal(await store.nextDueAt(0), 1);
      assert.equal(await store.nextDueAt(1), undefined, "due already: not a future due time");
      assert.equal((await claim("w", 10, 20, 10)).length, 1);
    });

    test("records attempts: a retry is due again later, a success is done, and the history keeps both", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_r", 1000, '{"n":1}');
      const [claimed] = await claim("w", 1000, 5000, 1);
      assert.ok(claimed);
      const firstAttempt = {
        deliveryId: claimed.id,
        attempt: 1,
        startedAt: 1000,
        durationMs: 12,
        statusCode: 503,
        error: "receiver answered 503; next attempt in 6 s",
        responseHeaders: { "retry-after": "6" },
        responseBody: "busy",
      };
      await store.recordAttempt(
        {
          deliveryId: claimed.id,
          status: "pending",
          attempts: 1,
          nextAttemptAt: 7000,
          attempt: firstAttempt,
        },
        "w",
      );
      assert.equal(await store.nextDueAt(1000), 7000);
      assert.equal(await store.nextDueAt(7000), undefined);
      assert.deepEqual(await store.countPendingDeliveries(1000), { due: 0, later: 1, held: 0 });
      assert.deepEqual(await store.countPendingDeliveries(7000), { due: 1, later: 0, held: 0 });
      assert.equal((await claim("w", 6999, 9000, 1)).length, 0);
      const [again] = await claim("w", 7000, 9000, 1);
      assert.equal(again?.attempts, 1);
      await store.recordAttempt(success(claimed.id, 2, 7000), "w");
      assert.equal(await store.nextDueAt(0), undefined);
      assert.deepEqual(await store.countPendingDeliveries(7000), { due: 0, later: 0, held: 0 });

      const detail = await store.getDelivery(w.id, claimed.id);
      assert.ok(detail);
      assert.equal(detail.status, "success");
      assert.equal(detail.attempts, 2);
      assert.equal(detail.nextAttemptAt, null);
      assert.equal(detail.lastStatusCode, 200);
      assert.equal(detail.lastResponseBody, "OK");
      assert.deepEqual(
        detail.attemptLog.map((a) => [a.attempt, a.statusCode, a.responseBody]),
        [
          [1, 503, "busy"],
          [2, 200, "OK"],
        ],
      );
      assert.deepEqual(detail.attemptLog[0], firstAttempt);
      assert.deepEqual(detail.attemptLog[1], {
        deliveryId: claimed.id,
        attempt: 2,
        startedAt: 7000,
        durationMs: 3,
        statusCode: 200,
        error: null,
        responseHeaders: { "content-type": "text/plain" },
        responseBody: "OK",
      });
      assert.equal(await store.getDelivery("wh_other", claimed.id), undefined);
    });

    test("keeps every attempt of a delivery tried many times, in order", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_many", 1000);
      let due = 1000;
      for (let attempt = 1; attempt <= 4; attempt++) {
        const [claimed] = await claim("w", due, due + 500, 1);
        assert.ok(claimed, `attempt ${attempt} is due`);
        assert.equal(claimed.attempts, attempt - 1);
        const last = attempt === 4;
        await store.recordAttempt(
          {
            deliveryId: claimed.id,
            status: last ? "failed" : "pending",
            attempts: attempt,
            nextAttemptAt: last ? null : due + 100,
            attempt: {
              deliveryId: claimed.id,
              attempt,
              startedAt: due,
              durationMs: attempt * 10,
              statusCode: 500 + attempt,
              error: `answered ${500 + attempt}`,
              responseHeaders: { "x-request-id": `r${attempt}` },
              responseBody: `body ${attempt}`,
            },
          },
          "w",
        );
        due += 100;
      }
      const [summary] = (await store.listDeliveries(w.id, { limit: 1 })).deliveries;
      assert.ok(summary);
      const detail = await store.getDelivery(w.id, summary.id);
      assert.equal(detail?.status, "failed");
      assert.equal(detail?.attempts, 4);
      assert.deepEqual(
        detail?.attemptLog.map((a) => [
          a.attempt,
          a.startedAt,
          a.durationMs,
          a.statusCode,
          a.error,
          a.responseHeaders?.["x-request-id"],
          a.responseBody,
        ]),
        [1, 2, 3, 4].map((n) => [
          n,
          1000 + (n - 1) * 100,
          n * 10,
          500 + n,
          `answered ${500 + n}`,
          `r${n}`,
          `body ${n}`,
        ]),
      );
    });

    /** Two webhooks, each with a delivery of `count` events `evt_<prefix><i>`, body `{"i":<i>}`. */
    async function twoWebhooksWithEvents(prefix: string, count: number) {
      const w = webhook();
      const other = webhook();
      await store.insertWebhook(w);
      await store.insertWebhook(other);
      for (let i = 0; i < count; i++) {
        await store.enqueueEvent(
          { id: `evt_${prefix}${i}`, type: "user.created", body: `{"i":${i}}`, createdAt: 10 + i },
          everyone,
          nextId,
        );
      }
      return { w, other };
    }

    test("pages a webhook's deliveries newest first with a cursor", async () => {
      const { w } = await twoWebhooksWithEvents("pg", 7);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.listDeliveries(
          w.id,
          cursor === undefined ? { limit: 3 } : { limit: 3, cursor },
        );
        seen.push(...page.deliveries.map((d) => d.eventId));
        assert.ok(page.deliveries.every((d) => d.webhookId === w.id));
        cursor = page.nextCursor;
        pages++;
      } while (cursor !== undefined && pages < 10);
      assert.equal(pages, 3);
      assert.deepEqual(
        seen,
        [6, 5, 4, 3, 2, 1, 0].map((i) => `evt_pg${i}`),
      );
      const first = (await store.listDeliveries(w.id, { limit: 1 })).deliveries[0];
      assert.equal(first?.status, "pending");
      assert.equal(first?.attempts, 0);
      assert.equal(first?.nextAttemptAt, 16);
      assert.equal(first?.body, '{"i":6}');
    });

    test("pages a webhook's deliveries in one status, newest first, with a cursor", async () => {
      const { w, other } = await twoWebhooksWithEvents("st", 9);
      const claimed = await claim("w", 100, 200, 100);
      assert.equal(claimed.length, 18);
      /** Event number i of `w` ends in this status (the rest stay pending). */
      const outcome = (i: number) => (i % 3 === 0 ? "failed" : i % 3 === 1 ? "success" : undefined);
      for (const delivery of claimed) {
        const i = Number(delivery.eventId.slice("evt_st".length));
        const status = delivery.webhookId === w.id ? outcome(i) : "failed";
        if (status === undefined) continue;
        const update = success(delivery.id, 1, 150);
        await store.recordAttempt(
          status === "success"
            ? update
            : { ...update, status: "failed", attempt: { ...update.attempt, statusCode: 400 } },
          "w",
        );
      }
      const read = async (status: "pending" | "success" | "failed") => {
        const seen: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await store.listDeliveries(w.id, {
            limit: 2,
            status,
            ...(cursor === undefined ? {} : { cursor }),
          });
          assert.ok(page.deliveries.every((d) => d.webhookId === w.id && d.status === status));
          seen.push(...page.deliveries.map((d) => d.eventId));
          cursor = page.nextCursor;
          pages++;
        } while (cursor !== undefined && pages < 10);
        return seen;
      };
      assert.deepEqual(await read("failed"), ["evt_st6", "evt_st3", "evt_st0"]);
      assert.deepEqual(await read("success"), ["evt_st7", "evt_st4", "evt_st1"]);
      assert.deepEqual(await read("pending"), ["evt_st8", "evt_st5", "evt_st2"]);
      // The other webhook's deliveries all failed: none of them is in w's history.
      assert.equal(
        (await store.listDeliveries(other.id, { limit: 20, status: "failed" })).deliveries.length,
        9,
      );
      assert.equal(
        (await store.listDeliveries(other.id, { limit: 20, status: "pending" })).deliveries.length,
        0,
      );
      // A cursor from the unfiltered history goes on in a filtered one, and the other way round.
      const firstOfAll = await store.listDeliveries(w.id, { limit: 4 });
      assert.ok(firstOfAll.nextCursor);
      const failedAfter = await store.listDeliveries(w.id, {
        limit: 10,
        status: "failed",
        cursor: firstOfAll.nextCursor,
      });
      assert.deepEqual(
        failedAfter.deliveries.map((d) => d.eventId),
        ["evt_st3", "evt_st0"],
      );
    });

    test("a page of history ends early once its payloads pass the page's limit, and always holds one", async () => {
      await store.insertWebhook(webhook());
      const big = (n: number, size: number) => `{"n":${n},"pad":"${"x".repeat(size)}"}`;
      await enqueue("evt_huge", 1, big(0, 5 * 1024 * 1024));
      for (let i = 1; i <= 3; i++) await enqueue(`evt_big${i}`, 1 + i, big(i, 1536 * 1024));
      const w = (await store.listWebhooks())[0];
      assert.ok(w);
      const pages: string[][] = [];
      let cursor: string | undefined;
      do {
        const page = await store.listDeliveries(
          w.id,
          cursor === undefined ? { limit: 10 } : { limit: 10, cursor },
        );
        pages.push(page.deliveries.map((d) => d.eventId));
        cursor = page.nextCursor;
      } while (cursor !== undefined && pages.length < 5);
      assert.deepEqual(pages, [["evt_big3", "evt_big2"], ["evt_big1"], ["evt_huge"]]);
    });

    test("refuses a cursor read from another webhook's deliveries", async () => {
      const { w, other } = await twoWebhooksWithEvents("cx", 3);
      const cursor = (await store.listDeliveries(w.id, { limit: 1 })).nextCursor;
      assert.ok(cursor);
      await assert.rejects(store.listDeliveries(other.id, { limit: 1, cursor }), {
        code: "validation_failed",
        field: "cursor",
        message: /belongs to another list/,
      });
      const next = await store.listDeliveries(w.id, { limit: 5, cursor });
      assert.deepEqual(
        next.deliveries.map((d) => d.eventId),
        ["evt_cx1", "evt_cx0"],
      );
    });

    test("deleting a webhook removes its pending deliveries from the queue", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_del", 1);
      await store.deleteWebhook(w.id);
      assert.equal((await claim("w", 10, 20, 10)).length, 0);
    });

    test("deleting a webhook deletes its deliveries and their attempts", async () => {
      const w = webhook();
      const claimed = await claimOneFor(w, "evt_cascade");
      await store.recordAttempt(success(claimed.id, 1, 20), "w");
      assert.equal(await store.deleteWebhook(w.id), true);
      // A webhook created again under the same id starts with an empty history.
      await store.insertWebhook(w);
      assert.equal((await store.listDeliveries(w.id, { limit: 10 })).deliveries.length, 0);
      assert.equal(await store.getDelivery(w.id, claimed.id), undefined);
    });

    test("deleting a webhook with a long history deletes all of it, and leaves other webhooks' deliveries", async () => {
      const w = webhook();
      const other = webhook();
      await store.insertWebhook(w);
      await store.insertWebhook(other);
      const onlyW = (active: readonly Webhook[]) => active.filter((a) => a.id === w.id);
      // More than one slice of a store that deletes a history in slices.
      for (let batch = 0; batch < 5; batch++) {
        await Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            store.enqueueEvent(
              { id: `evt_long${batch}_${i}`, type: "user.created", body: "{}", createdAt: 1 },
              onlyW,
              nextId,
            ),
          ),
        );
      }
      await enqueue("evt_both", 2);
      const claimed = await claim("w", 10, 100, 5);
      for (const d of claimed) await store.recordAttempt(success(d.id, 1, 20), "w");
      assert.equal(await store.deleteWebhook(w.id), true);
      await store.insertWebhook(w);
      assert.equal((await store.listDeliveries(w.id, { limit: 10 })).deliveries.length, 0);
      for (const d of claimed) assert.equal(await store.getDelivery(w.id, d.id), undefined);
      const left = await store.listDeliveries(other.id, { limit: 10 });
      assert.deepEqual(
        left.deliveries.map((d) => d.eventId),
        ["evt_both"],
      );
    });

    test("recording an attempt of a delivery deleted in flight is not an error", async () => {
      const w = webhook();
      const claimed = await claimOneFor(w, "evt_gone");
      await store.deleteWebhook(w.id);
      await store.recordAttempt(success(claimed.id, 1, 20), "w");
      assert.equal(await store.getDelivery(w.id, claimed.id), undefined);
    });

    test("stores an incoming webhook once per service and dedupe key", async () => {
      const base = incoming({
        eventName: "record.created",
        headers: { "x-webhook-delivery": "d1" },
      });
      const first = await store.saveIncoming({ ...base, id: "evt_in1", dedupeKey: "d1" });
      const again = await store.saveIncoming({ ...base, id: "evt_in2", dedupeKey: "d1" });
      const otherService = await store.saveIncoming({
        ...base,
        id: "evt_in3",
        service: "custom",
        dedupeKey: "d1",
      });
      const noKey1 = await store.saveIncoming({ ...base, id: "evt_in4", dedupeKey: null });
      const noKey2 = await store.saveIncoming({ ...base, id: "evt_in5", dedupeKey: null });
      assert.deepEqual(first, { eventId: "evt_in1", duplicate: false, deliveries: 0 });
      assert.deepEqual(again, { eventId: "evt_in1", duplicate: true, deliveries: 0 });
      assert.deepEqual(otherService, { eventId: "evt_in3", duplicate: false, deliveries: 0 });
      assert.deepEqual(noKey1, { eventId: "evt_in4", duplicate: false, deliveries: 0 });
      assert.deepEqual(noKey2, { eventId: "evt_in5", duplicate: false, deliveries: 0 });
    });

    test("concurrent copies of one incoming webhook are stored once", async () => {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.saveIncoming(
            incoming({
              id: `evt_cc${i}`,
              service: "stripe",
              dedupeKey: "evt_stripe_1",
              verifiedBy: "stripe-signature",
            }),
          ),
        ),
      );
      assert.equal(new Set(results.map((r) => r.eventId)).size, 1);
      assert.equal(results.filter((r) => !r.duplicate).length, 1);
    });

    test("an incoming webhook and the event it is routed to commit together, and a repeat is not routed", async () => {
      await store.insertWebhook(webhook());
      const route = (id: string) => ({
        event: { id, type: "user.created", body: '{"event":"user.created"}', createdAt: 5 },
        selectTargets: everyone,
        newDeliveryId: nextId,
      });
      const first = await store.saveIncoming(
        incoming({ id: "evt_rt1", dedupeKey: "k1", status: "routed", outgoingEventId: "evt_out1" }),
        route("evt_out1"),
      );
      assert.deepEqual(first, { eventId: "evt_rt1", duplicate: false, deliveries: 1 });
      const repeat = await store.saveIncoming(
        incoming({ id: "evt_rt2", dedupeKey: "k1", status: "routed", outgoingEventId: "evt_out2" }),
        route("evt_out2"),
      );
      assert.deepEqual(repeat, { eventId: "evt_rt1", duplicate: true, deliveries: 0 });
      const claimed = await claim("w", 10, 20, 10);
      assert.deepEqual(
        claimed.map((d) => d.eventId),
        ["evt_out1"],
      );
      const stored = await store.getIncoming("evt_rt1");
      assert.equal(stored?.status, "routed");
      assert.equal(stored?.outgoingEventId, "evt_out1");
      assert.equal(await store.getIncoming("evt_rt2"), undefined);
    });

    test("keeps every field of an incoming webhook, raw bytes included", async () => {
      const raw = Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x00, 0x3c, 0x2f, 0x61, 0x3e]);
      const event = incoming({
        service: "github-main",
        eventName: "push",
        dedupeKey: "gh-1",
        headers: { "x-github-event": "push" },
        rawBody: raw,
        contentType: "application/xml",
        verifiedBy: "none",
        verified: false,
        status: "failed",
        routeError: "no data",
        receivedAt: 1234,
      });
      await store.saveIncoming(event);
      assert.deepEqual(await store.getIncoming(event.id), event);
      await store.recordRouting(event.id, {
        status: "unrouted",
        outgoingEventId: null,
        routeError: null,
      });
      const after = await store.getIncoming(event.id);
      assert.equal(after?.status, "unrouted");
      assert.equal(after?.routeError, null);
    });

    test("lists incoming webhooks newest first, filtered by source, status and time, with a cursor", async () => {
      for (let i = 0; i < 6; i++) {
        await store.saveIncoming(
          incoming({
            id: `evt_l${i}`,
            service: i % 2 === 0 ? "xano" : "stripe",
            status: i < 3 ? "routed" : "unrouted",
            receivedAt: 100 + i,
          }),
        );
      }
      const all = await store.listIncoming({ limit: 4 });
      assert.deepEqual(
        all.events.map((e) => e.id),
        ["evt_l5", "evt_l4", "evt_l3", "evt_l2"],
      );
      assert.ok(all.nextCursor);
      const rest = await store.listIncoming({ limit: 4, cursor: all.nextCursor });
      assert.deepEqual(
        rest.events.map((e) => e.id),
        ["evt_l1", "evt_l0"],
      );
      assert.equal(rest.nextCursor, undefined);
      const xano = await store.listIncoming({ limit: 10, source: "xano", status: "routed" });
      assert.deepEqual(
        xano.events.map((e) => e.id),
        ["evt_l2", "evt_l0"],
      );
      const window = await store.listIncoming({ limit: 10, since: 101, until: 104 });
      assert.deepEqual(
        window.events.map((e) => e.id),
        ["evt_l3", "evt_l2", "evt_l1"],
      );
    });

    test("recording a new routing outcome can queue the event it produced", async () => {
      await store.insertWebhook(webhook());
      await store.saveIncoming(incoming({ id: "evt_rp", status: "unrouted" }));
      const deliveries = await store.recordRouting(
        "evt_rp",
        { status: "routed", outgoingEventId: "evt_rp_out", routeError: null },
        {
          event: { id: "evt_rp_out", type: "user.created", body: "{}", createdAt: 1 },
          selectTargets: everyone,
          newDeliveryId: nextId,
        },
      );
      assert.equal(deliveries, 1);
      assert.equal((await store.getIncoming("evt_rp"))?.outgoingEventId, "evt_rp_out");
    });

    test("lists every event an incoming webhook was routed to, newest first, and each names it", async () => {
      await store.insertWebhook(webhook());
      const routed = (id: string, type: string, createdAt: number) => ({
        event: { id, type, body: "{}", createdAt, incomingEventId: "evt_many" },
        selectTargets: everyone,
        newDeliveryId: nextId,
      });
      await store.saveIncoming(
        incoming({ id: "evt_many", status: "routed", outgoingEventId: "evt_many_1" }),
        routed("evt_many_1", "user.created", 10),
      );
      for (const [id, at] of [
        ["evt_many_2", 20],
        ["evt_many_3", 30],
      ] as const) {
        await store.recordRouting(
          "evt_many",
          { status: "routed", outgoingEventId: id, routeError: null },
          routed(id, "user.updated", at),
        );
      }
      // A trigger, and another incoming webhook's event, are not among them.
      await store.enqueueEvent(
        { id: "evt_many_trigger", type: "user.created", body: "{}", createdAt: 40 },
        everyone,
        nextId,
      );
      await store.saveIncoming(
        incoming({ id: "evt_other", status: "routed", outgoingEventId: "evt_other_1" }),
        {
          event: {
            id: "evt_other_1",
            type: "user.created",
            body: "{}",
            createdAt: 50,
            incomingEventId: "evt_other",
          },
          selectTargets: everyone,
          newDeliveryId: nextId,
        },
      );
      assert.deepEqual(await store.routedEvents("evt_many", 10), [
        { id: "evt_many_3", type: "user.updated", createdAt: 30 },
        { id: "evt_many_2", type: "user.updated", createdAt: 20 },
        { id: "evt_many_1", type: "user.created", createdAt: 10 },
      ]);
      assert.deepEqual(
        (await store.routedEvents("evt_many", 2)).map((e) => e.id),
        ["evt_many_3", "evt_many_2"],
      );
      assert.deepEqual(await store.routedEvents("evt_unknown", 10), []);
      assert.equal((await store.getEvent("evt_many_2"))?.incomingEventId, "evt_many");
      assert.equal((await store.getEvent("evt_many_trigger"))?.incomingEventId, undefined);
      assert.equal((await store.getIncoming("evt_many"))?.outgoingEventId, "evt_many_3");
    });

    test("keeps sources with every field; names are unique; save replaces", async () => {
      const s = source();
      await store.insertSource(s);
      assert.deepEqual(await store.getSource(s.name), s);
      await assert.rejects(store.insertSource(s));
      const changed = { ...s, secret: null, rules: [], updatedAt: 20 };
      await store.saveSource(changed);
      assert.deepEqual(await store.getSource(s.name), changed);
      const builtIn = source({ name: "xano", secret: null, verifier: { type: "xano" } });
      await store.saveSource(builtIn);
      assert.deepEqual(
        (await store.listSources()).map((x) => x.name),
        [s.name, "xano"].sort(),
      );
      assert.equal(await store.deleteSource(s.name), true);
      assert.equal(await store.deleteSource(s.name), false);
      assert.equal(await store.getSource(s.name), undefined);
    });

    test("a deleted source's webhooks stay, but a source made again under its name takes the same ids afresh", async () => {
      const s = source();
      await store.insertSource(s);
      const first = await store.saveIncoming(
        incoming({ id: "evt_src_1", service: s.name, dedupeKey: "same-id" }),
      );
      assert.equal(first.duplicate, false);
      assert.equal(await store.deleteSource(s.name), true);
      await store.insertSource(s);
      const again = await store.saveIncoming(
        incoming({ id: "evt_src_2", service: s.name, dedupeKey: "same-id" }),
      );
      assert.deepEqual(again, { eventId: "evt_src_2", duplicate: false, deliveries: 0 });
      assert.equal((await store.getIncoming("evt_src_1"))?.service, s.name);
      const repeat = await store.saveIncoming(
        incoming({ id: "evt_src_3", service: s.name, dedupeKey: "same-id" }),
      );
      assert.deepEqual(repeat, { eventId: "evt_src_2", duplicate: true, deliveries: 0 });
    });

    test("everything committed survives a reopen, and an expired lease frees its delivery", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_re", 1);
      assert.equal((await claim("w", 10, 50, 10)).length, 1);
      store = await fixture.reopen();
      assert.deepEqual(await store.getWebhook(w.id), w);
      const claimed = await claim("w2", 60, 100, 10);
      assert.deepEqual(
        claimed.map((d) => d.eventId),
        ["evt_re"],
      );
    });

    test("a delivery that is done can be queued again, due at once; a pending one is left alone", async () => {
      const w = webhook();
      const claimed = await claimOneFor(w, "evt_again");
      assert.equal(await store.requeueDelivery(w.id, claimed.id, 50), "pending");
      await store.recordAttempt(success(claimed.id, 1, 20), "w");
      assert.equal(await store.requeueDelivery(w.id, claimed.id, 60), "requeued");
      const detail = await store.getDelivery(w.id, claimed.id);
      assert.equal(detail?.status, "pending");
      assert.equal(detail?.nextAttemptAt, 60);
      assert.equal(detail?.attempts, 1);
      assert.equal(detail?.attemptLog.length, 1);
      assert.deepEqual(
        (await claim("w2", 60, 200, 10)).map((d) => [d.id, d.attempts]),
        [[claimed.id, 1]],
      );
      assert.equal(await store.requeueDelivery(w.id, claimed.id, 70), "pending");
      assert.equal(await store.requeueDelivery(w.id, "del_none", 70), "not_found");
      assert.equal(await store.requeueDelivery("wh_other", claimed.id, 70), "not_found");
    });

    test("a failed delivery queued again keeps its attempt in the history and drops its stale error", async () => {
      const w = webhook();
      const claimed = await claimOneFor(w, "evt_refused");
      const refused = "receiver answered 400, which is not retried: send it again with the retry";
      await store.recordAttempt(
        {
          deliveryId: claimed.id,
          status: "failed",
          attempts: 1,
          nextAttemptAt: null,
          attempt: {
            deliveryId: claimed.id,
            attempt: 1,
            startedAt: 20,
            durationMs: 5,
            statusCode: 400,
            error: refused,
            responseHeaders: { "content-type": "text/plain" },
            responseBody: "bad field",
          },
        },
        "w",
      );
      assert.equal(await store.requeueDelivery(w.id, claimed.id, 60), "requeued");
      const queued = await store.getDelivery(w.id, claimed.id);
      assert.equal(queued?.status, "pending");
      assert.equal(queued?.lastError, null);
      assert.equal(queued?.lastStatusCode, 400);
      assert.equal(queued?.lastResponseBody, "bad field");
      assert.equal(queued?.lastAttemptAt, 20);
      assert.deepEqual(
        queued?.attemptLog.map((a) => [a.attempt, a.statusCode, a.error, a.responseBody]),
        [[1, 400, refused, "bad field"]],
      );

      // The next attempt takes the row; the first stays in the history once, error and all.
      const [again] = await claim("w2", 60, 200, 10);
      assert.equal(again?.id, claimed.id);
      await store.recordAttempt(success(claimed.id, 2, 70), "w2");
      const delivered = await store.getDelivery(w.id, claimed.id);
      assert.equal(delivered?.status, "success");
      assert.deepEqual(
        delivered?.attemptLog.map((a) => [a.attempt, a.statusCode, a.error]),
        [
          [1, 400, refused],
          [2, 200, null],
        ],
      );
    });

    test("a delivery waiting for a later attempt can be brought forward; one due, leased or done cannot", async () => {
      const w = webhook();
      const claimed = await claimOneFor(w, "evt_forward");
      // Leased (being sent), and due besides.
      assert.equal(await store.bringDeliveryForward(w.id, claimed.id, 15), false);
      await store.recordAttempt(
        {
          deliveryId: claimed.id,
          status: "pending",
          attempts: 1,
          nextAttemptAt: 7000,
          attempt: {
            deliveryId: claimed.id,
            attempt: 1,
            startedAt: 20,
            durationMs: 5,
            statusCode: 503,
            error: "receiver answered 503",
            responseHeaders: {},
            responseBody: "",
          },
        },
        "w",
      );
      assert.equal(await store.bringDeliveryForward("wh_other", claimed.id, 100), false);
      assert.equal(await store.bringDeliveryForward(w.id, "del_none", 100), false);
      // Due within a second counts as due.
      assert.equal(await store.bringDeliveryForward(w.id, claimed.id, 7000 - DUE_SOON_MS), false);
      assert.equal((await claim("w2", 100, 200, 10)).length, 0);
      assert.equal(await store.bringDeliveryForward(w.id, claimed.id, 100), true);
      const detail = await store.getDelivery(w.id, claimed.id);
      assert.equal(detail?.status, "pending");
      assert.equal(detail?.nextAttemptAt, 100);
      assert.equal(detail?.attempts, 1);
      // Due now: brought forward once, it is not again.
      assert.equal(await store.bringDeliveryForward(w.id, claimed.id, 110), false);
      const [again] = await claim("w2", 110, 300, 10);
      assert.equal(again?.id, claimed.id);
      assert.equal(again?.attempts, 1);
      assert.equal(await store.bringDeliveryForward(w.id, claimed.id, 120), false);
      await store.recordAttempt(success(claimed.id, 2, 130), "w2");
      assert.equal(await store.bringDeliveryForward(w.id, claimed.id, 140), false);
      assert.equal((await store.getDelivery(w.id, claimed.id))?.status, "success");
    });

    test("a worker whose lease ran out cannot move the delivery on, but its attempt is kept", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_lost", 1);
      const [first] = await claim("slow", 10, 20, 1);
      assert.ok(first);
      const [second] = await claim("fast", 30, 90, 1);
      assert.equal(second?.id, first.id);
      await store.recordAttempt(success(first.id, 1, 31), "fast");
      await store.recordAttempt(
        {
          ...success(first.id, 1, 40),
          status: "failed",
          attempt: { ...success(first.id, 1, 40).attempt, statusCode: 500 },
        },
        "slow",
      );
      const detail = await store.getDelivery(w.id, first.id);
      assert.equal(detail?.status, "success");
      // Both sends are in the history, in the order they started.
      assert.deepEqual(
        detail?.attemptLog.map((a) => [a.attempt, a.startedAt, a.statusCode]),
        [
          [1, 31, 200],
          [1, 40, 500],
        ],
      );
    });

    test("a late report from a worker whose lease ran out never hides the attempts of the worker that took over", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_frozen", 1);
      const [held] = await claim("frozen", 10, 20, 1);
      assert.ok(held);
      await store.releaseExpiredLeases(30);
      assert.equal((await claim("other", 30, 40, 1))[0]?.id, held.id);
      const failedAt31 = success(held.id, 1, 31);
      await store.recordAttempt(
        {
          ...failedAt31,
          status: "pending",
          nextAttemptAt: 50,
          attempt: { ...failedAt31.attempt, statusCode: 500, responseBody: "busy" },
        },
        "other",
      );
      // The frozen worker wakes and reports the attempt it started at 12, before the takeover.
      await store.recordAttempt(success(held.id, 1, 12), "frozen");
      assert.equal((await claim("other", 50, 60, 1))[0]?.id, held.id);
      await store.recordAttempt(success(held.id, 2, 51), "other");
      const detail = await store.getDelivery(w.id, held.id);
      assert.equal(detail?.status, "success");
      assert.deepEqual(
        detail?.attemptLog.map((a) => [a.attempt, a.startedAt, a.statusCode]),
        [
          [1, 12, 200],
          [1, 31, 500],
          [2, 51, 200],
        ],
      );
    });

    test("a late report of the same worker's earlier claim leaves the delivery to its newer claim", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_twice", 1);
      const [held] = await claim("same", 10, 20, 1);
      assert.ok(held);
      await store.releaseExpiredLeases(30);
      assert.equal((await claim("same", 30, 40, 1))[0]?.id, held.id);
      // The attempt made under the first lease (until 20) reports late, asking for a retry.
      const late = success(held.id, 1, 12);
      await store.recordAttempt(
        {
          ...late,
          status: "pending",
          nextAttemptAt: 1000,
          attempt: { ...late.attempt, statusCode: 500, responseBody: "busy" },
        },
        "same",
        20,
      );
      // The attempt of the claim that holds the lease now is the one that settles it.
      await store.recordAttempt(success(held.id, 1, 31), "same", 40);
      const detail = await store.getDelivery(w.id, held.id);
      assert.equal(detail?.status, "success");
      assert.deepEqual(
        detail?.attemptLog.map((a) => [a.attempt, a.startedAt, a.statusCode]),
        [
          [1, 12, 500],
          [1, 31, 200],
        ],
      );
    });

    test("a delivery committed while the local worker has room is handed to it, leased", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      const taken: ClaimedDelivery[] = [];
      const leases: number[] = [];
      let untaken = 0;
      store.setLocalTaker({
        workerId: "local",
        room: () => undefined,
        takeLeased: (deliveries) => deliveries,
        reserve: (webhookIds) =>
          webhookIds.length === 1 ? { leaseUntil: 100, taken: new Set(webhookIds) } : undefined,
        take(deliveries, leaseUntil) {
          taken.push(...deliveries);
          leases.push(leaseUntil);
        },
        untaken: () => untaken++,
      });
      const queued = await enqueue("evt_handed", 5, '{"n":1}');
      store.setLocalTaker(undefined);
      assert.equal(queued, 1);
      assert.deepEqual(leases, [100]);
      assert.equal(untaken, 0, "everything was taken, so nothing waits to be claimed");
      const [handed] = taken;
      assert.deepEqual(handed && { ...handed, id: "" }, {
        id: "",
        webhookId: w.id,
        eventId: "evt_handed",
        eventType: "user.created",
        url: w.url,
        secret: w.secret,
        body: '{"n":1}',
        attempts: 0,
        createdAt: 5,
      });
      // Leased: nobody else claims it before the lease runs out, anyone may after.
      assert.deepEqual(await claim("other", 50, 90, 10), []);
      const [after] = await claim("other", 101, 200, 10);
      assert.equal(after?.id, handed?.id);
    });

    test("a local worker that takes the deliveries of some webhooks only leaves the others to be claimed", async () => {
      const kept = webhook();
      const left = webhook();
      for (const w of [kept, left]) await store.insertWebhook(w);
      const taken: ClaimedDelivery[] = [];
      let untaken = 0;
      store.setLocalTaker({
        workerId: "local",
        room: () => undefined,
        takeLeased: (deliveries) => deliveries,
        reserve: () => ({ leaseUntil: 100, taken: new Set([kept.id]) }),
        take: (deliveries) => taken.push(...deliveries),
        untaken: () => untaken++,
      });
      assert.equal(await enqueue("evt_split", 5), 2);
      store.setLocalTaker(undefined);
      assert.deepEqual(
        taken.map((d) => d.webhookId),
        [kept.id],
      );
      assert.equal(untaken, 1, "the worker hears that a delivery waits to be claimed");
      const claimed = await claim("other", 50, 90, 10);
      assert.deepEqual(
        claimed.map((d) => d.webhookId),
        [left.id],
        "the delivery taken is leased; the other is claimable at once",
      );
    });

    test("a local worker without room is handed nothing and told, after the commit, that the delivery waits to be claimed", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      let takes = 0;
      const claimsWhenTold: Array<Promise<ClaimedDelivery[]>> = [];
      store.setLocalTaker({
        workerId: "local",
        room: () => undefined,
        takeLeased: (deliveries) => deliveries,
        reserve: () => undefined,
        take() {
          takes++;
        },
        untaken() {
          claimsWhenTold.push(claim("other", 6, 90, 10));
        },
      });
      await enqueue("evt_full", 5);
      store.setLocalTaker(undefined);
      assert.equal(takes, 0);
      assert.equal(claimsWhenTold.length, 1, "told once");
      const claimed = await claimsWhenTold[0];
      assert.equal(claimed?.length, 1, "a claim made when told finds the delivery committed");
    });

    test("a local worker is not told of an event that reached no active webhook", async () => {
      await store.insertWebhook(webhook({ active: false }));
      let untaken = 0;
      store.setLocalTaker({
        workerId: "local",
        room: () => undefined,
        takeLeased: (deliveries) => deliveries,
        reserve: () => undefined,
        take() {},
        untaken: () => untaken++,
      });
      const queued = await enqueue("evt_nobody", 5);
      store.setLocalTaker(undefined);
      assert.equal(queued, 0);
      assert.equal(untaken, 0);
    });

    test("leases given back by their holder are claimable at once; others' are not touched", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      const taken: ClaimedDelivery[] = [];
      store.setLocalTaker({
        workerId: "local",
        room: () => undefined,
        takeLeased: (deliveries) => deliveries,
        reserve: (webhookIds) => ({ leaseUntil: 1000, taken: new Set(webhookIds) }),
        take: (deliveries) => taken.push(...deliveries),
        untaken() {},
      });
      await enqueue("evt_back", 5);
      store.setLocalTaker(undefined);
      const ids = taken.map((delivery) => delivery.id);
      assert.equal(ids.length, 1);
      const held = ids.map((id) => ({ id, leaseUntil: 1000 }));
      await store.releaseLeases(held, "someone-else");
      assert.equal((await claim("x", 10, 90, 10)).length, 0);
      await store.releaseLeases(held, "local");
      const claimed = await claim("x", 10, 90, 10);
      assert.deepEqual(
        claimed.map((delivery) => delivery.id),
        ids,
      );
    });

    test("giving back a lease that ran out leaves the one taken after it, even by the same worker", async () => {
      const w = webhook();
      await store.insertWebhook(w);
      await enqueue("evt_again", 5);
      const [first] = await claim("w", 10, 100, 10);
      assert.ok(first);
      // The first lease runs out unsent; the same worker claims the delivery again.
      const [again] = await claim("w", 100, 200, 10);
      assert.equal(again?.id, first.id);
      await store.releaseLeases([{ id: first.id, leaseUntil: 100 }], "w");
      assert.equal((await claim("x", 150, 250, 10)).length, 0, "the second lease holds");
      await store.releaseLeases([{ id: first.id, leaseUntil: 200 }], "w");
      assert.equal((await claim("x", 150, 250, 10)).length, 1, "given back, it is claimable");
    });
  });
}
