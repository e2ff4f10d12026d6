import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { InjectOptions } from "fastify";
import { loadConfig } from "../../src/config.js";
import { createHerald, type Herald } from "../../src/herald.js";
import { createTestSchema, urlWithSchema } from "../support/postgres.js";

const KEY = "http-test-key-0123456789";
const auth = { authorization: `Bearer ${KEY}` };
const STRIPE_SECRET = "whsec_http_test_secret";
const CUSTOM_SECRET = "http-test-custom-secret";

let herald: Herald;

/** Runs the API contract against a Herald on the given database. */
function describeApi(
  storeName: string,
  database: () => Promise<{ env: Record<string, string>; drop(): Promise<void> }>,
) {
  describe(`API on ${storeName}`, () => {
    let dataDir: string;
    let cleanup: () => Promise<void>;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "herald-http-"));
      const db = await database();
      cleanup = db.drop;
      herald = await createHerald(
        loadConfig({
          HERALD_DATA_DIR: dataDir,
          HERALD_API_KEY: KEY,
          LOG_LEVEL: "silent",
          HERALD_BODY_LIMIT: "4096",
          HERALD_INCOMING_SECRET_CUSTOM: CUSTOM_SECRET,
          HERALD_INCOMING_SECRET_STRIPE: STRIPE_SECRET,
          ...db.env,
        }),
      );
      await herald.app.ready();
    });

    after(async () => {
      await herald.stop();
      await cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    });

    registerApiTests();
  });
}

describeApi("SQLite", async () => ({ env: {}, drop: async () => {} }));
describeApi("PostgreSQL", async () => {
  const { schema, drop } = await createTestSchema();
  return { env: { DATABASE_URL: urlWithSchema(schema) }, drop };
});

async function call(options: InjectOptions) {
  const response = await herald.app.inject(options);
  return { status: response.statusCode, body: response.json(), headers: response.headers };
}

const post = (url: string, payload: unknown, headers: Record<string, string> = auth) =>
  call({ method: "POST", url, payload: payload as object, headers });
/** A POST whose body is sent as given, with its own content type. */
const postRaw = (url: string, contentType: string, payload: string) =>
  call({ method: "POST", url, payload, headers: { ...auth, "content-type": contentType } });
const put = (url: string, payload: unknown) =>
  call({ method: "PUT", url, payload: payload as object, headers: auth });
const get = (url: string) => call({ method: "GET", url, headers: auth });
/** An incoming JSON webhook to `source`, signed with X-Webhook-Signature. */
const postSigned = (source: string, secret: string, body: string) =>
  call({
    method: "POST",
    url: `/api/incoming-webhooks/${source}`,
    payload: body,
    headers: {
      "content-type": "application/json",
      "x-webhook-signature": createHmac("sha256", secret).update(body).digest("hex"),
    },
  });
const del = (url: string) => call({ method: "DELETE", url, headers: auth });

function assertError(response: { status: number; body: any }, status: number, pattern?: RegExp) {
  assert.equal(response.status, status, JSON.stringify(response.body));
  assert.equal(response.body.success, false);
  assert.equal(typeof response.body.error, "string");
  assert.equal(typeof response.body.message, "string");
  assert.ok(response.body.message.length > 0);
  if (pattern) assert.match(response.body.message, pattern);
}

/** Registers a webhook that differs from a valid one only by its name. */
const registerNamed = (name: string) =>
  post("/api/webhooks", { name, url: "https://example.com/webhook", events: ["user.created"] });

function assertNameRefused(response: { status: number; body: any }, pattern: RegExp) {
  assertError(response, 400, pattern);
  assert.equal(response.body.field, "name");
}

async function register(overrides: Record<string, unknown> = {}) {
  const response = await post("/api/webhooks", {
    name: "Production Webhook",
    url: "https://example.com/webhook",
    events: ["user.created", "user.updated"],
    ...overrides,
  });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.webhook;
}

function registerApiTests() {
  describe("webhook registration", () => {
    test("POST /api/webhooks answers 201 with the seed's body and the secret in full", async () => {
      const response = await post("/api/webhooks", {
        name: "My Webhook",
        url: "https://example.com/webhook",
        events: ["user.created", "user.updated"],
      });
      assert.equal(response.status, 201);
      assert.equal(response.body.success, true);
      assert.equal(response.body.message, "Webhook registered successfully");
      const webhook = response.body.webhook;
      assert.match(webhook.id, /^wh_\d+_[a-z0-9]+$/);
      assert.equal(webhook.name, "My Webhook");
      assert.equal(webhook.url, "https://example.com/webhook");
      assert.deepEqual(webhook.events, ["user.created", "user.updated"]);
      assert.match(webhook.secret, /^[0-9a-f]{64}$/);
      assert.equal(webhook.active, true);
      assert.equal(new Date(webhook.createdAt).toISOString(), webhook.createdAt);
      assert.equal(webhook.updatedAt, webhook.createdAt);
    });

    test("the URL is kept as registered, not rewritten", async () => {
      for (const url of [
        "http://localhost:4000",
        "https://Example.com:443/Hook?b=2&a=1",
        "https://example.com/a%20b",
      ]) {
        const webhook = await register({ url });
        assert.equal(webhook.url, url);
        assert.equal((await get(`/api/webhooks/${webhook.id}`)).body.webhook.url, url);
      }
      assert.equal(
        (await register({ url: "  https://example.com/h  " })).url,
        "https://example.com/h",
      );
      const webhook = await register();
      const updated = await put(`/api/webhooks/${webhook.id}`, { url: "http://localhost:4001" });
      assert.equal(updated.body.webhook.url, "http://localhost:4001");
    });

    test("a custom secret is kept and shown once", async () => {
      const webhook = await register({ secret: "optional-custom-secret" });
      assert.equal(webhook.secret, "optional-custom-secret");
      const read = await get(`/api/webhooks/${webhook.id}`);
      assert.equal(read.body.webhook.secret, "***");
    });

    test("GET /api/webhooks lists webhooks with count and masked secrets", async () => {
      const webhook = await register();
      const response = await get("/api/webhooks");
      assert.equal(response.status, 200);
      assert.equal(response.body.success, true);
      assert.equal(response.body.count, response.body.webhooks.length);
      const listed = response.body.webhooks.find((w: any) => w.id === webhook.id);
      assert.ok(listed);
      assert.equal(listed.secret, "***");
      assert.ok(response.body.webhooks.every((w: any) => w.secret === "***"));
    });

    test("GET /api/webhooks pages in creation order when asked with limit or cursor", async () => {
      for (let i = 0; i < 5; i++) await register();
      const all = (await get("/api/webhooks")).body;
      assert.equal(all.nextCursor, null);
      const seen: string[] = [];
      let next = "/api/webhooks?limit=2";
      let pages = 0;
      while (next && pages < 100) {
        const page = await get(next);
        assert.equal(page.status, 200, JSON.stringify(page.body));
        assert.ok(page.body.count <= 2);
        assert.equal(page.body.count, page.body.webhooks.length);
        assert.ok(page.body.webhooks.every((w: any) => w.secret === "***"));
        seen.push(...page.body.webhooks.map((w: any) => w.id));
        pages++;
        const cursor = page.body.nextCursor;
        next = cursor === null ? "" : `/api/webhooks?limit=2&cursor=${encodeURIComponent(cursor)}`;
      }
      assert.deepEqual(
        seen,
        all.webhooks.map((w: any) => w.id),
      );
      assert.equal(pages, Math.ceil(all.count / 2));
      assertError(await get("/api/webhooks?cursor="), 400, /cursor/);
    });

    test("webhook paging rejects bad limits and cursors, and a cursor of another list", async () => {
      const webhook = await register();
      await post("/api/webhooks/trigger", { event: "user.created", data: {} });
      await post("/api/webhooks/trigger", { event: "user.created", data: {} });
      const deliveries = await get(`/api/webhooks/${webhook.id}/deliveries?limit=1`);
      const deliveryCursor = deliveries.body.nextCursor;
      assert.equal(typeof deliveryCursor, "string");
      for (const query of [
        "limit=0",
        "limit=501",
        "limit=abc",
        "cursor=bogus",
        `cursor=${deliveryCursor}`,
      ]) {
        assertError(await get(`/api/webhooks?${query}`), 400, /limit|cursor/);
      }
    });

    test("GET /api/webhooks/:id returns one webhook, masked", async () => {
      const webhook = await register();
      const response = await get(`/api/webhooks/${webhook.id}`);
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, { success: true, webhook: { ...webhook, secret: "***" } });
    });

    test("PUT /api/webhooks/:id changes the given fields and updatedAt", async () => {
      const webhook = await register();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const response = await put(`/api/webhooks/${webhook.id}`, {
        name: "Updated Webhook Name",
        url: "https://new-url.com/webhook",
        events: ["user.created", "user.deleted"],
        active: false,
      });
      assert.equal(response.status, 200);
      assert.equal(response.body.message, "Webhook updated successfully");
      const updated = response.body.webhook;
      assert.equal(updated.name, "Updated Webhook Name");
      assert.equal(updated.url, "https://new-url.com/webhook");
      assert.deepEqual(updated.events, ["user.created", "user.deleted"]);
      assert.equal(updated.active, false);
      assert.equal(updated.secret, "***");
      assert.equal(updated.createdAt, webhook.createdAt);
      assert.ok(updated.updatedAt > webhook.updatedAt);

      const partial = await put(`/api/webhooks/${webhook.id}`, { active: true });
      assert.equal(partial.body.webhook.name, "Updated Webhook Name");
      assert.equal(partial.body.webhook.active, true);
    });

    test("DELETE /api/webhooks/:id removes it; a second delete is 404", async () => {
      const webhook = await register();
      const response = await del(`/api/webhooks/${webhook.id}`);
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, { success: true, message: "Webhook deleted successfully" });
      assertError(await get(`/api/webhooks/${webhook.id}`), 404);
      assertError(await del(`/api/webhooks/${webhook.id}`), 404);
    });

    test("DELETE with a JSON content type and no body is an ordinary delete", async () => {
      const webhook = await register();
      const response = await call({
        method: "DELETE",
        url: `/api/webhooks/${webhook.id}`,
        headers: { ...auth, "content-type": "application/json" },
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.equal(response.body.message, "Webhook deleted successfully");
    });
  });

  describe("validation", () => {
    test("missing fields are 400 naming the field", async () => {
      for (const [body, field] of [
        [{ url: "https://e.com", events: ["user.created"] }, "name"],
        [{ name: "x", events: ["user.created"] }, "url"],
        [{ name: "x", url: "https://e.com" }, "events"],
      ] as const) {
        const response = await post("/api/webhooks", body);
        assertError(response, 400, new RegExp(field));
        assert.equal(response.body.field, field);
      }
    });

    test("an update with no field it can change is 400 and changes nothing", async () => {
      const webhook = await register();
      for (const payload of [
        { nmae: "typo" },
        { secret: "***" },
        { id: "wh_other", createdAt: 1 },
      ]) {
        const response = await put(`/api/webhooks/${webhook.id}`, payload);
        assertError(response, 400, /name, url, events or active/);
      }
      const read = await get(`/api/webhooks/${webhook.id}`);
      assert.equal(read.body.webhook.updatedAt, webhook.updatedAt);
      assert.equal(read.body.webhook.name, webhook.name);
    });

    test("an update may send the secret back masked, but cannot change it", async () => {
      const webhook = await register({ secret: "kept-secret-123" });
      const update = (payload: Record<string, unknown>) =>
        put(`/api/webhooks/${webhook.id}`, payload);
      const masked = await update({ name: "Renamed", secret: "***" });
      assert.equal(masked.status, 200, JSON.stringify(masked.body));
      assert.equal(masked.body.webhook.name, "Renamed");
      const changed = await update({ secret: "another-secret" });
      assertError(changed, 400, /secret cannot be changed/);
      assert.equal(changed.body.field, "secret");
    });

    test("a name of only spaces is 400 naming the field, on create and on update", async () => {
      assertNameRefused(await registerNamed("   "), /name/);
      const webhook = await register();
      const updated = await put(`/api/webhooks/${webhook.id}`, { name: " \t " });
      assertError(updated, 400, /name/);
      assert.equal(updated.body.field, "name");
    });

    test("wrong types, empty lists and non-http URLs are 400", async () => {
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ name: "x", url: "https://e.com", events: "user.created" }, /events/],
        [{ name: "x", url: "https://e.com", events: [] }, /events/],
        [{ name: "x", url: "ftp://e.com/hook", events: ["user.created"] }, /url/],
        [{ name: "x", url: "not a url", events: ["user.created"] }, /url/],
        [{ name: "x", url: "https://e.com/a\u0000b", events: ["user.created"] }, /control/],
        [{ name: "x", url: "https://e.com/a\nb", events: ["user.created"] }, /control/],
        [{ name: "x", url: "http://e.com:0/hook", events: ["user.created"] }, /port 0/],
        [{ name: "", url: "https://e.com", events: ["user.created"] }, /name/],
        [{ name: 5, url: "https://e.com", events: ["user.created"] }, /name/],
        [{ name: "x", url: "https://e.com", events: ["user.created"], active: "false" }, /active/],
      ];
      for (const [body, pattern] of cases)
        assertError(await post("/api/webhooks", body), 400, pattern);
    });

    test("an unknown event type is 400 on create, update and trigger", async () => {
      assertError(
        await post("/api/webhooks", { name: "x", url: "https://e.com", events: ["user.exploded"] }),
        400,
        /user\.exploded/,
      );
      const webhook = await register();
      assertError(await put(`/api/webhooks/${webhook.id}`, { events: ["nope"] }), 400, /nope/);
      assertError(await post("/api/webhooks/trigger", { event: "nope", data: {} }), 400, /nope/);
    });

    test("malformed JSON is 400, a non-JSON content type 415, an oversize body 413", async () => {
      const broken = await postRaw("/api/webhooks", "application/json", '{"name":}');
      assertError(broken, 400, /not valid JSON \(Unexpected/);
      assert.doesNotMatch(broken.body.message, /content-type is set/);
      assertError(await postRaw("/api/webhooks", "text/plain", "hello"), 415, /application\/json/);
      assertError(await postRaw("/api/webhooks", "application/x-www-form-urlencoded", "a=b"), 415);
      const big = { name: "x".repeat(5000), url: "https://e.com", events: ["user.created"] };
      assertError(await post("/api/webhooks", big), 413);
    });

    test("a request without a body is not refused for its content type (as axios sends a bare POST)", async () => {
      const bare = (method: "POST" | "DELETE", url: string, contentType: string) =>
        call({
          method,
          url,
          payload: "",
          headers: { ...auth, "content-type": contentType, "content-length": "0" },
        });
      const webhook = await register();
      assertError(
        await bare("POST", `/api/webhooks/${webhook.id}/deliveries/del_nope/retry`, "text/plain"),
        404,
        /del_nope/,
      );
      assertError(
        await bare("DELETE", "/api/webhooks/wh_nope", "application/x-www-form-urlencoded"),
        404,
      );
      const deleted = await bare(
        "DELETE",
        `/api/webhooks/${webhook.id}`,
        "application/x-www-form-urlencoded",
      );
      assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
      // A route that needs a body says so, whatever the type of the empty one.
      assertError(await bare("POST", "/api/webhooks", "text/plain"), 400);
    });

    test("a secret that is the mask, blank, or holds a character no store keeps is 400", async () => {
      for (const secret of ["***", "   ", "a\u0000b", "tab\there", "half\ud800"]) {
        const response = await post("/api/webhooks", {
          name: "n",
          url: "https://example.com/h",
          events: ["user.created"],
          secret,
        });
        assertError(response, 400);
        assert.equal(response.body.field, "secret", JSON.stringify(response.body));
      }
      assert.equal(
        (await register({ secret: "caf\u00e9 \ud83d\ude00" })).secret,
        "caf\u00e9 \ud83d\ude00",
      );
    });

    test("half a surrogate pair in a name or URL is 400, since no store could keep it", async () => {
      assertNameRefused(await registerNamed("bad\ud800"), /surrogate/);
      const webhook = await register();
      assertNameRefused(await put(`/api/webhooks/${webhook.id}`, { name: "\udc00" }), /surrogate/);
      const url = await post("/api/webhooks", {
        name: "n",
        url: "https://example.com/\ud800",
        events: ["user.created"],
      });
      assertError(url, 400, /surrogate/);
      assert.equal(url.body.field, "url");
    });

    test("a URL the parser would read as another is 400 naming url", async () => {
      for (const url of [
        "http:///example.com/triple",
        "http:example.com/h",
        "https:\\\\example.com\\h",
        "https://example.com/a b",
        "https://@example.com/h",
      ]) {
        const response = await post("/api/webhooks", { name: "n", url, events: ["user.created"] });
        assertError(response, 400);
        assert.equal(response.body.field, "url", url);
      }
    });

    test("a body in another charset or compressed is 415; bytes that are not UTF-8 are 400", async () => {
      const body = JSON.stringify({ name: "café", url: "https://e.com/h", events: ["auth.login"] });
      const send = (contentType: string, payload: string | Buffer, extra = {}) =>
        call({
          method: "POST",
          url: "/api/webhooks",
          payload,
          headers: { ...auth, "content-type": contentType, ...extra },
        });
      assertError(await send("application/json; charset=iso-8859-1", body), 415, /iso-8859-1/);
      assertError(await send("application/json; charset=utf-16", "{}"), 415, /utf-16/);
      const ascii = JSON.stringify({
        name: "plain",
        url: "https://e.com/h",
        events: ["auth.login"],
      });
      const labelled = await send("application/json; charset=ISO-8859-1", ascii);
      assert.equal(labelled.status, 201, JSON.stringify(labelled.body));
      assertError(
        await send("application/json", body, { "content-encoding": "gzip" }),
        415,
        /gzip/,
      );
      const latin1 = Buffer.from(body, "latin1");
      assertError(await send("application/json", latin1), 400, /UTF-8/);
      const utf8 = await send('application/json; charset="UTF-8"', body);
      assert.equal(utf8.status, 201, JSON.stringify(utf8.body));
      assert.equal(utf8.body.webhook.name, "café");
    });

    test("a JSON body that starts with a UTF-8 byte order mark is read", async () => {
      const body = { name: "bom", url: "https://example.com/h", events: ["user.created"] };
      const response = await postRaw(
        "/api/webhooks",
        "application/json",
        `\uFEFF${JSON.stringify(body)}`,
      );
      assert.equal(response.status, 201, JSON.stringify(response.body));
      assert.equal(response.body.webhook.name, "bom");
    });

    test("a __proto__ key is refused with a message that names it, not as invalid JSON", async () => {
      const response = await postRaw(
        "/api/webhooks/trigger",
        "application/json",
        '{"event":"user.created","data":{"__proto__":{"x":1}}}',
      );
      assertError(response, 400, /__proto__/);
      assert.doesNotMatch(response.body.message, /not valid JSON/);
    });

    test("an empty update and a non-object body are 400", async () => {
      const webhook = await register();
      assertError(await put(`/api/webhooks/${webhook.id}`, {}), 400);
      assertError(await postRaw("/api/webhooks", "application/json", "[1,2]"), 400);
      assertError(
        await post("/api/webhooks/trigger", { event: "user.created", data: "text" }),
        400,
        /data/,
      );
    });

    test("deliveries paging rejects bad limits and cursors", async () => {
      const webhook = await register();
      for (const query of ["limit=0", "limit=501", "limit=abc", "cursor=bogus"]) {
        assertError(await get(`/api/webhooks/${webhook.id}/deliveries?${query}`), 400);
      }
      const url = `/api/webhooks/${webhook.id}/deliveries`;
      assertError(await get(`${url}?limit=0`), 400, /^limit must be at least 1\.$/);
      assertError(await get(`${url}?limit=501`), 400, /^limit must be at most 500\.$/);
    });

    test("deliveries can be read in one status; an unknown status is refused, naming the ones there are", async () => {
      const webhook = await register();
      await post("/api/webhooks/trigger", { event: "user.created", data: {} });
      const pending = await get(`/api/webhooks/${webhook.id}/deliveries?status=pending`);
      assert.equal(pending.status, 200, JSON.stringify(pending.body));
      assert.ok(pending.body.deliveries.every((d: any) => d.status === "pending"));
      const failed = await get(`/api/webhooks/${webhook.id}/deliveries?status=failed&limit=5`);
      assert.equal(failed.status, 200);
      assert.deepEqual(failed.body.deliveries, []);
      assert.equal(failed.body.count, 0);
      const refused = await get(`/api/webhooks/${webhook.id}/deliveries?status=done`);
      assertError(refused, 400, /^status must be one of 'pending', 'success', 'failed'\.$/);
      assert.equal(refused.body.field, "status");
      assertError(
        await get(`/api/webhooks/${webhook.id}/deliveries?status=failed&status=success`),
        400,
        /^status is given more than once/,
      );
    });

    test("a query parameter given twice is refused as such", async () => {
      const webhook = await register();
      for (const url of [
        `/api/webhooks/${webhook.id}/deliveries?limit=1&limit=2`,
        `/api/webhooks/${webhook.id}/deliveries?cursor=a&cursor=b`,
        "/api/webhooks?limit=5&limit=5",
      ]) {
        const answer = await get(url);
        assertError(answer, 400, /^(limit|cursor) is given more than once; give it once\.$/);
        assert.match(answer.body.field, /^(limit|cursor)$/);
      }
    });

    test("a limit is written in digits: other ways of writing a number are refused", async () => {
      const webhook = await register();
      for (const limit of ["1e2", "0x10", "%2B5", "%201", "5.0"]) {
        const answer = await get(`/api/webhooks/${webhook.id}/deliveries?limit=${limit}`);
        assertError(answer, 400, /^limit must be a whole number\.$/);
        assert.equal(answer.body.field, "limit");
      }
      const digits = await get(`/api/webhooks/${webhook.id}/deliveries?limit=007`);
      assert.equal(digits.status, 200, JSON.stringify(digits.body));
      assertError(
        await get(`/api/incoming-events?limit=1e2`),
        400,
        /^limit must be a whole number/,
      );
    });
  });

  describe("not found", () => {
    test("a NUL character in a name is 400 and in an id not found, on every store alike", async () => {
      assertNameRefused(await registerNamed("nul\u0000name"), /NUL/);
      for (const name of ["bell\u0007", "two\nlines", "esc\u001b[31m", "del\u007f"]) {
        assertNameRefused(await registerNamed(name), /control character/);
      }
      const webhook = await registerNamed("holds deliveries");
      assert.equal(webhook.status, 201);
      for (const [method, url, code] of [
        ["GET", "/api/webhooks/wh_%00", "webhook_not_found"],
        ["PUT", "/api/webhooks/wh_%00", "webhook_not_found"],
        ["DELETE", "/api/webhooks/wh_%00", "webhook_not_found"],
        ["GET", "/api/webhooks/wh_%00/deliveries", "webhook_not_found"],
        [
          "GET",
          `/api/webhooks/${webhook.body.webhook.id}/deliveries/del_%00`,
          "delivery_not_found",
        ],
        ["GET", "/api/events/evt_%00", undefined],
        ["GET", "/api/incoming-events/evt_%00", "incoming_event_not_found"],
        ["GET", "/api/sources/a%00b", undefined],
      ] as const) {
        const answer = await call({
          method,
          url,
          headers: auth,
          ...(method === "PUT" ? { payload: { name: "x" } } : {}),
        });
        assertError(answer, 404);
        if (code) assert.equal(answer.body.code, code, `${method} ${url}`);
      }
      const filtered = await get("/api/incoming-events?source=a%00b");
      assert.equal(filtered.status, 200, JSON.stringify(filtered.body));
      assert.deepEqual(filtered.body.events, []);
    });

    test("a Stripe event id holding NUL or half a surrogate pair is stored, and a repeat found, on every store alike", async () => {
      for (const id of ["evt_a\u0000b", "evt_c\ud800d"]) {
        const body = JSON.stringify({ id, type: "invoice.paid" });
        const send = () => postSigned("stripe", STRIPE_SECRET, body);
        const first = await send();
        assert.equal(first.status, 200, JSON.stringify(first.body));
        assert.equal(first.body.duplicate, false);
        const again = await send();
        assert.equal(again.status, 200, JSON.stringify(again.body));
        assert.equal(again.body.duplicate, true);
        assert.equal(again.body.eventId, first.body.eventId);
      }
    });

    test("Stripe event ids that differ only in NUL, half surrogates or U+FFFD are different events", async () => {
      const ids = [
        "evt_x\u0000X",
        "evt_x\ud800X",
        "evt_x\udfffX",
        "evt_x\ufffdX",
        '\u0001json:"evt_x"',
      ];
      const eventIds = new Set<string>();
      for (const id of [...ids, 'evt_x"']) {
        const body = JSON.stringify({ id, type: "invoice.paid" });
        const answer = await postSigned("stripe", STRIPE_SECRET, body);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal(answer.body.duplicate, false, JSON.stringify(id));
        eventIds.add(answer.body.eventId);
      }
      assert.equal(eventIds.size, ids.length + 1);
    });

    test("a signed incoming webhook whose event name holds a NUL is stored, the NUL replaced", async () => {
      const body = JSON.stringify({ event: "odd\u0000name", id: "nul-1" });
      const answer = await postSigned("custom", CUSTOM_SECRET, body);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const stored = await get(`/api/incoming-events/${answer.body.eventId}`);
      assert.equal(stored.status, 200, JSON.stringify(stored.body));
      assert.equal(stored.body.event.event, "odd\uFFFDname");
      assert.equal(stored.body.event.body, body);
    });

    test("a time filter beyond any date is 400", async () => {
      for (const query of ["since=99999999999999999999", "until=99999999999999999999"]) {
        assertError(await get(`/api/incoming-events?${query}`), 400);
      }
    });

    test("a time filter in Unix seconds is 400 saying how to send it; 0 and milliseconds are read", async () => {
      const seconds = await get("/api/incoming-events?since=1796144061");
      assertError(seconds, 400, /1796144061000/);
      assert.equal(seconds.body.field, "since");
      assert.equal((await get("/api/incoming-events?since=0")).status, 200);
      assert.equal((await get("/api/incoming-events?until=1796144061000")).status, 200);
    });

    test("unknown ids are 404 in the error format, deliveries included", async () => {
      for (const [method, url] of [
        ["GET", "/api/webhooks/wh_missing"],
        ["PUT", "/api/webhooks/wh_missing"],
        ["DELETE", "/api/webhooks/wh_missing"],
        ["GET", "/api/webhooks/wh_missing/deliveries"],
        ["GET", "/api/webhooks/wh_missing/deliveries/del_missing"],
      ] as const) {
        const response = await call({
          method,
          url,
          headers: auth,
          ...(method === "PUT" ? { payload: { name: "x" } } : {}),
        });
        assertError(response, 404, /not found/i);
      }
      const webhook = await register();
      assertError(await get(`/api/webhooks/${webhook.id}/deliveries/del_missing`), 404);
    });

    test("an id or a source name too long to exist is 404, not a validation error", async () => {
      const long = "x".repeat(300);
      assertError(await get(`/api/webhooks/${long}`), 404);
      assertError(await get(`/api/webhooks/${long}/deliveries`), 404);
      assertError(await get(`/api/incoming-events/${long}`), 404);
      assertError(await get(`/api/sources/${long}`), 404);
    });

    test("unknown routes are 404 in the error format", async () => {
      assertError(await call({ method: "GET", url: "/api/nothing-here" }), 404);
      assertError(await call({ method: "GET", url: "/" }), 404);
    });

    test("a path asked with a method it does not take is 404 naming the methods it takes", async () => {
      assertError(
        await call({ method: "GET", url: "/api/incoming-webhooks/xano" }),
        404,
        /takes POST, not GET/,
      );
      const patch = await call({ method: "PATCH", url: "/api/webhooks/wh_1?x=1", headers: auth });
      assertError(patch, 404, /takes GET or PUT or DELETE, not PATCH/);
      assert.equal(patch.headers.allow, "GET, PUT, DELETE, HEAD");
      assertError(
        await call({ method: "DELETE", url: "/api/webhooks/", headers: auth }),
        404,
        /takes GET or POST, not DELETE/,
      );
      // POST takes a source's name there, and no source may be named health.
      assertError(
        await call({ method: "PUT", url: "/api/incoming-webhooks/health" }),
        404,
        /takes GET, not PUT\.$/,
      );
    });

    test("a request with no body is not refused for a Content-Encoding it names", async () => {
      const headers = { ...auth, "content-encoding": "gzip" };
      assertError(await call({ method: "DELETE", url: "/api/webhooks/wh_none", headers }), 404);
      assertError(
        await call({ method: "DELETE", url: "/api/webhooks/wh_none", headers, payload: "" }),
        404,
      );
    });

    test("a path a route names is not taken as an id or a name by a route of another method", async () => {
      for (const method of ["GET", "PUT", "DELETE"] as const) {
        const response = await call({ method, url: "/api/webhooks/trigger", headers: auth });
        assertError(response, 404, new RegExp(`takes POST, not ${method}\\.$`));
        assert.equal(response.headers.allow, "POST", method);
      }
      const head = await herald.app.inject({
        method: "HEAD",
        url: "/api/webhooks/trigger",
        headers: auth,
      });
      assert.equal(head.statusCode, 404);
      assert.equal(head.headers.allow, "POST");
      const health = await call({ method: "POST", url: "/api/incoming-webhooks/health" });
      assertError(health, 404, /takes GET, not POST\.$/);
      assert.equal(health.headers.allow, "GET, HEAD");
    });

    test("an unknown path has no Allow header", async () => {
      const response = await call({ method: "GET", url: "/api/nothing-here", headers: auth });
      assertError(response, 404);
      assert.equal(response.headers.allow, undefined);
    });

    test("a path the router cannot read is 400 or 414 in the error format", async () => {
      for (const url of ["/api/webhooks/%ZZ", "/api/webhooks/a%", "/api/webhooks/%ZZ/deliveries"]) {
        assertError(await get(url), 400, /not a valid URL/);
      }
      const long = "x".repeat(600);
      assertError(await get(`/api/webhooks/${long}`), 414, /too long/);
      assertError(
        await call({ method: "POST", url: `/api/incoming-webhooks/${long}`, payload: {} }),
        414,
      );
    });
  });

  describe("authentication", () => {
    test("every /api/webhooks route needs the API key", async () => {
      for (const [method, url] of [
        ["GET", "/api/webhooks"],
        ["POST", "/api/webhooks"],
        ["GET", "/api/webhooks/events/types"],
        ["POST", "/api/webhooks/trigger"],
        ["GET", "/api/webhooks/wh_x"],
        ["PUT", "/api/webhooks/wh_x"],
        ["DELETE", "/api/webhooks/wh_x"],
        ["GET", "/api/webhooks/wh_x/deliveries"],
      ] as const) {
        const missing = await call({ method, url });
        assertError(missing, 401, /Authorization: Bearer/);
        assert.equal(missing.headers["www-authenticate"], 'Bearer realm="herald"');
        const wrong = await call({ method, url, headers: { authorization: "Bearer wrong-key" } });
        assertError(wrong, 401);
        assert.equal(
          wrong.headers["www-authenticate"],
          'Bearer realm="herald", error="invalid_token"',
        );
        assertError(await call({ method, url, headers: { authorization: KEY } }), 401);
      }
    });

    test("without the key, a path or method the API does not have under its prefixes is 401 too, not told apart", async () => {
      for (const [method, url] of [
        ["GET", "/api/webhooks/trigger"],
        ["PATCH", "/api/webhooks/wh_x"],
        ["POST", "/api/webhooks/wh_x/foo"],
        ["DELETE", "/api/webhooks"],
        ["GET", "/api/webhooks/%ZZ"],
        ["GET", `/api/webhooks/${"x".repeat(600)}`],
        ["GET", "/api/events"],
        ["GET", "/api/sources/a/b/c"],
        ["PUT", "/api/incoming-events"],
      ] as const) {
        assertError(await call({ method, url }), 401, /Authorization: Bearer/);
        const withKey = await call({ method, url, headers: auth });
        assert.ok([400, 404, 414].includes(withKey.status), `${method} ${url}: ${withKey.status}`);
      }
      // Outside them, the 404 needs no key.
      assertError(await call({ method: "GET", url: "/api/nothing" }), 404);
      assertError(await call({ method: "GET", url: "/api/webhooksx" }), 404);
    });

    test("another scheme than Bearer is 401 saying so; X-API-Key also carries the key", async () => {
      const basic = await call({
        method: "GET",
        url: "/api/webhooks",
        headers: { authorization: "Basic YTpi", "x-api-key": KEY },
      });
      assertError(basic, 401, /Bearer/);
      assert.doesNotMatch(basic.body.message, /needs an API key/);
      const header = await call({
        method: "GET",
        url: "/api/webhooks",
        headers: { "x-api-key": KEY },
      });
      assert.equal(header.status, 200, JSON.stringify(header.body));
      const emptyAuthorization = await call({
        method: "GET",
        url: "/api/webhooks",
        headers: { authorization: "", "x-api-key": KEY },
      });
      assert.equal(emptyAuthorization.status, 200, JSON.stringify(emptyAuthorization.body));
    });

    test("/healthz says the process is up and /readyz that its database answers, without a key", async () => {
      const alive = await call({ method: "GET", url: "/healthz" });
      assert.equal(alive.status, 200);
      assert.equal(alive.body.success, true);
      const ready = await call({ method: "GET", url: "/readyz" });
      assert.equal(ready.status, 200, JSON.stringify(ready.body));
      assert.equal(ready.body.message, "Herald is ready: its database answers");
    });

    test("the incoming health check needs no key", async () => {
      const response = await call({ method: "GET", url: "/api/incoming-webhooks/health" });
      assert.equal(response.status, 200);
      assert.equal(response.body.success, true);
      assert.equal(response.body.message, "Incoming webhook endpoint is healthy");
      assert.equal(new Date(response.body.timestamp).toISOString(), response.body.timestamp);
    });
  });

  describe("events and triggers", () => {
    test("GET /api/webhooks/events/types lists the seed's 12 types", async () => {
      const response = await get("/api/webhooks/events/types");
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, {
        success: true,
        count: 12,
        events: [
          "user.created",
          "user.updated",
          "user.deleted",
          "auth.login",
          "auth.logout",
          "document.uploaded",
          "document.processed",
          "accessibility.request",
          "sync.started",
          "sync.completed",
          "ai.process.started",
          "ai.process.completed",
        ],
      });
    });

    test("a trigger queues one pending delivery per matching active webhook", async () => {
      const match = await register({ events: ["document.processed"] });
      const paused = await register({ events: ["document.processed"], active: false });
      const other = await register({ events: ["auth.login"] });
      const response = await post("/api/webhooks/trigger", {
        event: "document.processed",
        data: { documentId: "d1" },
      });
      assert.equal(response.status, 200);
      assert.equal(response.body.success, true);
      assert.equal(response.body.message, "Webhook event triggered successfully");
      assert.match(response.body.eventId, /^evt_/);
      assert.equal(response.body.deliveries, 1);

      const event = await get(`/api/events/${response.body.eventId}`);
      assert.equal(event.status, 200, JSON.stringify(event.body));
      assert.equal(event.body.event.id, response.body.eventId);
      assert.equal(event.body.event.event, "document.processed");
      assert.deepEqual(event.body.event.payload.data, { documentId: "d1" });
      assert.ok(!Number.isNaN(Date.parse(event.body.event.timestamp)));
      // A trigger's event came from no incoming webhook.
      assert.equal(event.body.event.incomingEventId, null);
      assert.equal(event.body.event.links, undefined);
      assertError(await get("/api/events/evt_none"), 404);
      assertError(await call({ method: "GET", url: `/api/events/${response.body.eventId}` }), 401);

      const history = await get(`/api/webhooks/${match.id}/deliveries`);
      assert.equal(history.status, 200);
      assert.equal(history.body.count, 1);
      const [delivery] = history.body.deliveries;
      assert.match(delivery.id, /^del_/);
      assert.equal(delivery.webhookId, match.id);
      assert.equal(delivery.event, "document.processed");
      assert.equal(delivery.payload.event, "document.processed");
      assert.deepEqual(delivery.payload.data, { documentId: "d1" });
      assert.equal(new Date(delivery.payload.timestamp).toISOString(), delivery.payload.timestamp);
      assert.equal(delivery.status, "pending");
      assert.equal(delivery.attempts, 0);
      assert.equal(delivery.response, null);
      assert.equal(typeof delivery.nextAttemptAt, "string");
      assert.equal(history.body.nextCursor, null);

      for (const w of [paused, other]) {
        const none = await get(`/api/webhooks/${w.id}/deliveries`);
        assert.equal(none.body.count, 0);
      }

      const detail = await get(`/api/webhooks/${match.id}/deliveries/${delivery.id}`);
      assert.equal(detail.status, 200);
      assert.equal(detail.body.delivery.id, delivery.id);
      assert.deepEqual(detail.body.delivery.attemptLog, []);
      assert.equal(delivery.heldBecause, null);
    });

    test("retrying a delivery: one already due is 409, unknown ids 404, and the key is needed", async () => {
      const w = await register({ events: ["document.processed"] });
      assert.equal(
        (await post("/api/webhooks/trigger", { event: "document.processed" })).status,
        200,
      );
      const [delivery] = (await get(`/api/webhooks/${w.id}/deliveries`)).body.deliveries;
      const retryUrl = `/api/webhooks/${w.id}/deliveries/${delivery.id}/retry`;
      assertError(await call({ method: "POST", url: retryUrl }), 401);
      const pending = await call({ method: "POST", url: retryUrl, headers: auth });
      assertError(pending, 409, /already due or being sent/);
      assert.equal(pending.body.error, "Conflict");
      assertError(await postRaw(retryUrl, "application/json", ""), 409, /already due/);
      assertError(await post(`/api/webhooks/${w.id}/deliveries/del_none/retry`, {}), 404);
      assertError(await post(`/api/webhooks/wh_none/deliveries/${delivery.id}/retry`, {}), 404);
    });

    test("a pending delivery of a webhook made inactive says it is held and how to release it", async () => {
      const w = await register({ events: ["document.processed"] });
      assert.equal(
        (await post("/api/webhooks/trigger", { event: "document.processed" })).status,
        200,
      );
      const setActive = (active: boolean) => put(`/api/webhooks/${w.id}`, { active });
      const held = async () => {
        const list = await get(`/api/webhooks/${w.id}/deliveries`);
        const [delivery] = list.body.deliveries;
        const detail = await get(`/api/webhooks/${w.id}/deliveries/${delivery.id}`);
        assert.equal(detail.body.delivery.heldBecause, delivery.heldBecause);
        // A held delivery has no time set for its next attempt.
        assert.equal(delivery.nextAttemptAt === null, delivery.heldBecause !== null);
        return delivery.heldBecause as string | null;
      };

      assert.equal((await setActive(false)).status, 200);
      const reason = await held();
      assert.match(reason ?? "", /inactive/);
      assert.ok(reason?.includes(`PUT /api/webhooks/${w.id}`), reason ?? "");
      // Retrying it is refused with the same way out.
      const [delivery] = (await get(`/api/webhooks/${w.id}/deliveries`)).body.deliveries;
      const retry = await post(`/api/webhooks/${w.id}/deliveries/${delivery.id}/retry`, {});
      assertError(retry, 409, /held because webhook '\S+' is inactive/);
      assert.ok(retry.body.message.includes(`PUT /api/webhooks/${w.id} with "active": true`));
      assert.equal((await setActive(true)).status, 200);
      assert.equal(await held(), null);
    });

    test("fields a route does not read are ignored with a warning naming them, and only then", async () => {
      const plain = await post("/api/webhooks", {
        name: "Plain",
        url: "https://example.com/hook",
        events: ["user.created"],
      });
      assert.equal(plain.status, 201);
      assert.equal("warnings" in plain.body, false);

      const typo = await post("/api/webhooks", {
        name: "Typo",
        url: "https://example.com/hook",
        events: ["user.created"],
        actve: false,
      });
      assert.equal(typo.status, 201);
      assert.equal(typo.body.webhook.active, true);
      assert.equal(typo.body.warnings.length, 1);
      assert.match(
        typo.body.warnings[0],
        /^Field "actve" is not read for a webhook and was ignored\. Did you mean "active"\?/,
      );

      // What a GET shows can be sent back as it is.
      const shown = (await get(`/api/webhooks/${plain.body.webhook.id}`)).body.webhook;
      const echoed = await put(`/api/webhooks/${shown.id}`, { ...shown, name: "Renamed" });
      assert.equal(echoed.status, 200);
      assert.equal("warnings" in echoed.body, false);
      const paused = await put(`/api/webhooks/${shown.id}`, { name: "Paused?", acitve: false });
      assert.equal(paused.status, 200);
      assert.equal(paused.body.webhook.active, true);
      assert.match(paused.body.warnings[0], /"acitve".*Did you mean "active"\?/);
      // With nothing else to change, the body is refused, naming the field it could not read.
      assertError(
        await put(`/api/webhooks/${shown.id}`, { acitve: false }),
        400,
        /no field that can be changed .*"acitve".*Did you mean "active"\?/,
      );

      const misplaced = await post("/api/webhooks/trigger", {
        event: "user.created",
        payload: { id: 1 },
      });
      assert.equal(misplaced.status, 200);
      assert.deepEqual(misplaced.body.warnings, [
        'Field "payload" was ignored: the event\'s data goes in "data".',
        'No "data" was given, so the event was sent with "data": {}.',
      ]);
      const sent = await post("/api/webhooks/trigger", { event: "user.created", data: {} });
      assert.equal("warnings" in sent.body, false);
    });

    test("a number too large for JSON in data is 400 naming where it is", async () => {
      const response = await postRaw(
        "/api/webhooks/trigger",
        "application/json",
        '{"event":"user.created","data":{"ok":null,"list":[1,{"big":-1e400}]}}',
      );
      assertError(response, 400, /too large/);
      assert.equal(response.body.field, "data.list[1].big");
      const fine = await postRaw(
        "/api/webhooks/trigger",
        "application/json",
        '{"event":"user.created","data":{"ok":null,"large":1e300}}',
      );
      assert.equal(fine.status, 200, JSON.stringify(fine.body));
    });

    test("a whole number JSON parsers would round (beyond 2^53) is 400 naming where it is", async () => {
      const trigger = (data: string) =>
        postRaw(
          "/api/webhooks/trigger",
          "application/json",
          `{"event":"user.created","data":${data}}`,
        );
      const response = await trigger(
        '{"id":"12345678901234567890","n":[{"big":12345678901234567890}]}',
      );
      assertError(response, 400, /beyond 9007199254740991.*arrive as 12345678901234567000.*string/);
      assert.equal(response.body.field, "data.n[0].big");
      assertError(await trigger('{"low":-9007199254740993}'), 400);
      for (const fine of [
        '{"edge":9007199254740991,"low":-9007199254740991}',
        '{"id":"12345678901234567890","ms":1733382000000}',
        '{"f":1234567890.1234567,"large":1e300}',
      ]) {
        const answer = await trigger(fine);
        assert.equal(answer.status, 200, `${fine}: ${JSON.stringify(answer.body)}`);
      }
    });

    test("a trigger without data sends an empty object; without event it is 400", async () => {
      const response = await post("/api/webhooks/trigger", { event: "sync.started" });
      assert.equal(response.status, 200);
      assertError(await post("/api/webhooks/trigger", { data: {} }), 400, /event/);
    });
  });
}
