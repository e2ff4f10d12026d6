import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../src/config.js";
import { createHerald, type Herald } from "../../src/herald.js";

const KEY = "cors-test-key-0123456789";
const PAGE = "http://localhost:5173";

/** Starts Herald on a fresh SQLite file with `env` added; stops it after the suite. */
function heraldWith(env: Record<string, string>): () => Herald {
  let herald: Herald | undefined;
  let dataDir = "";
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "herald-cors-"));
    herald = await createHerald(
      loadConfig({ HERALD_DATA_DIR: dataDir, HERALD_API_KEY: KEY, LOG_LEVEL: "silent", ...env }),
    );
    await herald.app.ready();
  });
  after(async () => {
    await herald?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return () => herald as Herald;
}

function preflight(herald: Herald, origin: string, url = "/api/webhooks") {
  return herald.app.inject({
    method: "OPTIONS",
    url,
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
}

describe("CORS with HERALD_CORS_ORIGINS set", () => {
  const herald = heraldWith({ HERALD_CORS_ORIGINS: `${PAGE}, https://admin.example.com` });

  test("a preflight from an allowed origin is answered 204 with what the page may send", async () => {
    const res = await preflight(herald(), PAGE);
    assert.equal(res.statusCode, 204);
    assert.equal(res.body, "");
    assert.equal(res.headers["access-control-allow-origin"], PAGE);
    assert.equal(res.headers["access-control-allow-methods"], "GET, HEAD, POST, PUT, DELETE");
    assert.equal(res.headers["access-control-allow-headers"], "authorization, content-type");
    assert.equal(res.headers["access-control-max-age"], "600");
    assert.match(String(res.headers.vary), /Origin/);
  });

  test("a preflight needs no API key, on any route, and stores nothing", async () => {
    const res = await preflight(herald(), "https://admin.example.com", "/api/webhooks/trigger");
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers["access-control-allow-origin"], "https://admin.example.com");
    const list = await herald().app.inject({
      method: "GET",
      url: "/api/webhooks",
      headers: { authorization: `Bearer ${KEY}` },
    });
    assert.equal(list.json().count, 0);
  });

  test("a preflight asking to send odd header text gets the default list", async () => {
    const res = await herald().app.inject({
      method: "OPTIONS",
      url: "/api/webhooks",
      headers: {
        origin: PAGE,
        "access-control-request-method": "PUT",
        "access-control-request-headers": "authorization; x=(1)",
      },
    });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers["access-control-allow-headers"], "Authorization, Content-Type");
  });

  test("a preflight from another origin is refused 403 in the error format, naming the setting", async () => {
    const res = await preflight(herald(), "https://elsewhere.example");
    assert.equal(res.statusCode, 403);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    const body = res.json();
    assert.equal(body.success, false);
    assert.equal(body.error, "Forbidden");
    assert.match(body.message, /https:\/\/elsewhere\.example/);
    assert.match(
      body.message,
      /HERALD_CORS_ORIGINS \(http:\/\/localhost:5173, https:\/\/admin\.example\.com\)/,
    );
  });

  test("answers to an allowed page carry its origin, errors included", async () => {
    const created = await herald().app.inject({
      method: "POST",
      url: "/api/webhooks",
      headers: { origin: PAGE, authorization: `Bearer ${KEY}` },
      payload: { name: "Dashboard", url: "https://example.com/hook", events: ["user.created"] },
    });
    assert.equal(created.statusCode, 201);
    assert.equal(created.headers["access-control-allow-origin"], PAGE);
    assert.equal(created.headers["access-control-expose-headers"], "Retry-After, Allow");

    for (const [request, status] of [
      [{ method: "GET", url: "/api/webhooks" }, 401],
      [
        {
          method: "GET",
          url: "/api/webhooks/wh_missing",
          headers: { authorization: `Bearer ${KEY}` },
        },
        404,
      ],
      [
        {
          method: "POST",
          url: "/api/webhooks/trigger",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          payload: "{not json",
        },
        400,
      ],
    ] as const) {
      const res = await herald().app.inject({
        ...request,
        headers: { ...("headers" in request ? request.headers : {}), origin: PAGE },
      });
      assert.equal(res.statusCode, status, `${request.method} ${request.url}`);
      assert.equal(
        res.headers["access-control-allow-origin"],
        PAGE,
        `${request.method} ${request.url}`,
      );
      assert.equal(res.json().success, false);
    }
  });

  test("answers to another origin, or to no origin, carry no CORS headers", async () => {
    for (const headers of [{ origin: "https://elsewhere.example" }, {}]) {
      const res = await herald().app.inject({
        method: "GET",
        url: "/api/webhooks",
        headers: { ...headers, authorization: `Bearer ${KEY}` },
      });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers["access-control-allow-origin"], undefined);
    }
  });
});

describe("CORS with HERALD_CORS_ORIGINS=*", () => {
  const herald = heraldWith({ HERALD_CORS_ORIGINS: "*" });

  test("any origin may call, and is told so with *", async () => {
    const res = await preflight(herald(), "https://anywhere.example");
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers["access-control-allow-origin"], "*");
    const list = await herald().app.inject({
      method: "GET",
      url: "/api/webhooks/events/types",
      headers: { origin: "https://anywhere.example", authorization: `Bearer ${KEY}` },
    });
    assert.equal(list.statusCode, 200);
    assert.equal(list.headers["access-control-allow-origin"], "*");
  });
});

describe("CORS by default", () => {
  const herald = heraldWith({});

  test("a preflight is refused with the setting that would allow it", async () => {
    const res = await preflight(herald(), PAGE);
    assert.equal(res.statusCode, 403);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    const body = res.json();
    assert.equal(body.error, "Forbidden");
    assert.match(body.message, /HERALD_CORS_ORIGINS is not set/);
  });

  test("answers carry no CORS headers", async () => {
    const res = await herald().app.inject({
      method: "GET",
      url: "/api/webhooks",
      headers: { origin: PAGE, authorization: `Bearer ${KEY}` },
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
  });

  test("an OPTIONS request that is no preflight is answered as before", async () => {
    const res = await herald().app.inject({
      method: "OPTIONS",
      url: "/api/webhooks",
      headers: { authorization: `Bearer ${KEY}` },
    });
    assert.equal(res.statusCode, 404);
    assert.match(res.json().message, /This path takes GET or POST, not OPTIONS/);
  });
});
