/**
 * Requests too broken to reach the router (oversized headers, invalid HTTP) or to be handled (data
 * nested beyond the stack) still get an answer in the contract's error format.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type RunningHerald, startHerald, TEST_API_KEY, waitFor } from "../support/herald.js";
import { spawnHerald } from "../support/process.js";

/** Writes `raw` on a fresh connection and returns everything the server sent before closing. */
function exchange(url: string, raw: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(raw));
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(received));
    socket.setTimeout(5000, () => socket.destroy(new Error("no answer within 5 s")));
  });
}

/**
 * Sends `head` (a request's headers) on a fresh connection, then body bytes for as long as the
 * server keeps the connection open, up to `forMs`. Returns what the server answered, whether it
 * closed the connection, and how many body bytes it took.
 */
function streamBody(
  url: string,
  head: string,
  forMs: number,
): Promise<{ answer: string; closed: boolean; sent: number }> {
  const { hostname, port } = new URL(url);
  const chunk = Buffer.alloc(64 * 1024, "a");
  return new Promise((resolve) => {
    let answer = "";
    let sent = 0;
    let closed = false;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, closed, sent });
    };
    const timer = setTimeout(settle, forMs);
    const socket = connect(Number(port), hostname, () => {
      socket.write(head);
      const pump = () => {
        while (!closed && !settled) {
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once("drain", pump);
            return;
          }
        }
      };
      pump();
    });
    socket.setEncoding("utf8");
    socket.on("data", (data: string) => {
      answer += data;
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      closed = true;
      settle();
    });
  });
}

/** Every answer in `raw`, a connection's whole output, in order. */
function parseAnswers(raw: string): Array<{ status: number; body: any }> {
  const answers: Array<{ status: number; body: any }> = [];
  let rest = raw;
  while (rest.startsWith("HTTP/1.1 ")) {
    const headEnd = rest.indexOf("\r\n\r\n");
    const head = rest.slice(0, headEnd);
    const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
    const body = rest.slice(headEnd + 4, headEnd + 4 + length);
    answers.push({ status: Number(head.split(" ")[1]), body: JSON.parse(body) });
    rest = rest.slice(headEnd + 4 + length);
  }
  return answers;
}

function parseAnswer(raw: string): { status: number; body: any } {
  const [head = "", body = ""] = raw.split("\r\n\r\n");
  const status = Number(head.split(" ")[1]);
  return { status, body: JSON.parse(body) };
}

describe("broken requests", () => {
  let herald: RunningHerald;
  before(async () => {
    herald = await startHerald({
      HERALD_REQUEST_TIMEOUT: "1s",
      HERALD_INCOMING_SECRET_CUSTOM: "custom-secret",
    });
  });
  after(() => herald.stop());

  test("headers over 16 KB are 431 in the error format", async () => {
    const query = "x".repeat(17_000);
    const answer = parseAnswer(
      await exchange(herald.url, `GET /api/webhooks?q=${query} HTTP/1.1\r\nHost: a\r\n\r\n`),
    );
    assert.equal(answer.status, 431);
    assert.equal(answer.body.success, false);
    assert.equal(answer.body.error, "Request Header Fields Too Large");
    assert.match(answer.body.message, /16 KB/);
  });

  test("data nested too deeply to handle is 400, not an internal error", async () => {
    const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`;
    const response = await fetch(`${herald.url}/api/webhooks/trigger`, {
      method: "POST",
      headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
      body: `{"event":"user.created","data":{"deep":${deep}}}`,
    });
    const body = (await response.json()) as { success: boolean; message: string };
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.equal(body.success, false);
    assert.match(body.message, /nested too deeply/);
  });

  test("a CONNECT request is 400 in the error format, not dropped unanswered", async () => {
    const answer = parseAnswer(
      await exchange(herald.url, "CONNECT /api/webhooks HTTP/1.1\r\nHost: a\r\n\r\n"),
    );
    assert.equal(answer.status, 400);
    assert.equal(answer.body.success, false);
    assert.match(answer.body.message, /not a proxy/);
  });

  test("a request with over 1,000 headers within 16 KB keeps them all: none is dropped", async () => {
    const body = JSON.stringify({ event: "ping" });
    const signature = createHmac("sha256", "custom-secret").update(body).digest("hex");
    const filler = Array.from({ length: 1500 }, (_, i) => `X-H${i}: 1\r\n`).join("");
    const answer = parseAnswer(
      await exchange(
        herald.url,
        `POST /api/incoming-webhooks/custom HTTP/1.1\r\nHost: a\r\n${filler}Content-Type: application/json\r\nX-Webhook-Signature: ${signature}\r\nX-Webhook-Delivery: after-the-filler\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const stored = await fetch(`${herald.url}/api/incoming-events/${answer.body.eventId}`, {
      headers: { authorization: `Bearer ${TEST_API_KEY}` },
    });
    const { event: detail } = (await stored.json()) as {
      event: { dedupeKey: string; headers: Record<string, string> };
    };
    assert.equal(detail.dedupeKey, "after-the-filler");
    assert.equal(detail.headers["x-h1499"], "1");
  });

  test("an HTTP/1.1 request without a Host header is 400 in the error format", async () => {
    const answer = parseAnswer(
      await exchange(
        herald.url,
        `GET /api/webhooks HTTP/1.1\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(answer.status, 400);
    assert.equal(answer.body.success, false);
    assert.match(answer.body.message, /Host header/);
  });

  test("a client that stops sending halfway through its body is answered 408 and let go", async () => {
    const started = Date.now();
    const answer = parseAnswer(
      await exchange(
        herald.url,
        `POST /api/webhooks/trigger HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: 44\r\n\r\n{"ev`,
      ),
    );
    assert.equal(answer.status, 408);
    assert.equal(answer.body.success, false);
    assert.match(answer.body.message, /not sent completely in time/);
    assert.ok(Date.now() - started < 4000, "answered soon after the 1 s timeout");
  });

  test("requests pipelined behind a body that is not JSON are each answered, in order", async () => {
    const trigger = (body: string, last = false) =>
      `POST /api/webhooks/trigger HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${last ? "Connection: close\r\n" : ""}\r\n${body}`;
    const event = '{"event":"user.created","data":{}}';
    const answers = parseAnswers(
      await exchange(
        herald.url,
        trigger(event) +
          trigger('{"event":') +
          trigger(event) +
          trigger('{"event":"user.created","data":{"__proto__":{}}}') +
          trigger(event, true),
      ),
    );
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [200, 400, 200, 400, 200],
    );
    assert.equal(answers[1]?.body.code, "malformed_json");
  });

  test("an error answer to a request without a body keeps the connection for the next request", async () => {
    const ask = (line: string, last = false) =>
      `${line} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${TEST_API_KEY}\r\n${last ? "Connection: close\r\n" : ""}\r\n`;
    const answers = parseAnswers(
      await exchange(
        herald.url,
        ask("GET /api/nope") + ask("GET /") + ask("DELETE /healthz") + ask("GET /healthz", true),
      ),
    );
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [404, 404, 404, 200],
    );
  });

  test("a large body refused before it is read is not read: the connection is closed", async () => {
    for (const [path, key] of [
      ["/api/webhooks/trigger", "wrong-key"],
      ["/api/webhooks/trigger", TEST_API_KEY],
      ["/api/incoming-webhooks/custom", TEST_API_KEY],
    ]) {
      const { answer, closed, sent } = await streamBody(
        herald.url,
        `POST ${path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n`,
        3000,
      );
      const { status } = parseAnswer(answer);
      assert.ok(status === 401 || status === 413, `${path}: ${answer}`);
      assert.match(answer, /connection: close/i, path);
      assert.ok(closed, `${path}: the connection stayed open while ${sent} bytes were sent`);
      assert.ok(
        sent < 100_000_000,
        `${path}: ${sent} bytes were read before the connection closed`,
      );
    }
  });

  test("a request refused before its body came, whose client then stops, gets one answer", async () => {
    const raw = await exchange(
      herald.url,
      `POST /api/webhooks/trigger HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer wrong-key\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"event":`,
    );
    const answers = parseAnswers(raw);
    assert.deepEqual(
      answers.map((answer) => answer.status),
      [401],
      raw,
    );
  });

  test("a request that is not valid HTTP is 400 in the error format", async () => {
    const answer = parseAnswer(
      await exchange(
        herald.url,
        "POST /api/webhooks/trigger HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 9\r\n\r\nhello",
      ),
    );
    assert.equal(answer.status, 400);
    assert.equal(answer.body.success, false);
    assert.equal(answer.body.error, "Bad Request");
    assert.match(answer.body.message, /not valid HTTP/);
  });

  test("two Authorization headers are refused, whichever comes first", async () => {
    for (const [first, second] of [
      [TEST_API_KEY, "wrong-key"],
      ["wrong-key", TEST_API_KEY],
    ]) {
      const answer = parseAnswer(
        await exchange(
          herald.url,
          `GET /api/webhooks HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${first}\r\nAuthorization: Bearer ${second}\r\nConnection: close\r\n\r\n`,
        ),
      );
      assert.equal(answer.status, 401);
      assert.match(answer.body.message, /more than one Authorization header/);
    }
  });

  test("an expectation other than 100-continue is 417 in the error format", async () => {
    const answer = parseAnswer(
      await exchange(
        herald.url,
        `GET /api/webhooks HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(answer.status, 417);
    assert.equal(answer.body.success, false);
    assert.equal(answer.body.error, "Expectation Failed");
    assert.match(answer.body.message, /'Expect: something-else'.*without the header/);
  });

  describe("Expect: 100-continue", () => {
    const ask = (headers: string[]) =>
      `POST /api/webhooks/trigger HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n${headers.join("\r\n")}\r\n\r\n`;

    test("a request refused for its key or its declared size is answered before any 100 Continue", async () => {
      for (const [headers, status] of [
        [["Authorization: Bearer wrong-key", "Content-Length: 2000000"], 401],
        [[`Authorization: Bearer ${TEST_API_KEY}`, "Content-Length: 2000000"], 413],
      ] as const) {
        // The body is never sent: the answer must come without it, and then the connection close.
        const raw = await exchange(herald.url, ask([...headers]));
        assert.doesNotMatch(raw, /100 Continue/);
        assert.equal(parseAnswer(raw).status, status, raw);
      }
    });

    test("a request no route takes is answered 404 (401 without the key) before any 100 Continue", async () => {
      for (const [line, key, status, message] of [
        ["POST /api/nope", true, 404, /Route not found: POST \/api\/nope/],
        ["PUT /api/webhooks", true, 404, /This path takes GET or POST, not PUT/],
        ["DELETE /api/webhooks", true, 404, /not DELETE/],
        ["POST /api/webhooks/x/y/z", false, 401, /Authorization/],
      ] as const) {
        const raw = await exchange(
          herald.url,
          `${line} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n${key ? `Authorization: Bearer ${TEST_API_KEY}\r\n` : ""}Content-Length: 2\r\n\r\n`,
        );
        assert.doesNotMatch(raw, /100 Continue/);
        const answer = parseAnswer(raw);
        assert.equal(answer.status, status, raw);
        assert.match(answer.body.message, message);
      }
    });

    test("a body in a type or charset the API does not read is refused before any 100 Continue", async () => {
      for (const [type, message] of [
        ["text/plain", /Content-Type 'text\/plain' is not supported/],
        ["application/json; charset=utf-16", /charset 'utf-16'/],
      ] as const) {
        const raw = await exchange(
          herald.url,
          `POST /api/webhooks HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Type: ${type}\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n`,
        );
        assert.doesNotMatch(raw, /100 Continue/);
        const answer = parseAnswer(raw);
        assert.equal(answer.status, 415, raw);
        assert.match(answer.body.message, message);
      }
    });

    test("an incoming webhook to a source without a secret, or in a type no source reads, is refused before its body", async () => {
      for (const [source, type, status] of [
        ["xano", "application/json", 401],
        ["custom", "text/csv", 415],
      ] as const) {
        const raw = await exchange(
          herald.url,
          `POST /api/incoming-webhooks/${source} HTTP/1.1\r\nHost: a\r\nContent-Type: ${type}\r\nExpect: 100-continue\r\nContent-Length: 500000\r\n\r\n`,
        );
        assert.doesNotMatch(raw, /100 Continue/);
        assert.equal(parseAnswer(raw).status, status, raw);
      }
    });

    test("an accepted request is told to continue, and its body is read", async () => {
      const body = '{"event":"user.created","data":{}}';
      const { hostname, port } = new URL(herald.url);
      const raw = await new Promise<string>((resolve, reject) => {
        let received = "";
        const socket = connect(Number(port), hostname, () =>
          socket.write(
            ask([
              `Authorization: Bearer ${TEST_API_KEY}`,
              `Content-Length: ${body.length}`,
              "Connection: close",
            ]),
          ),
        );
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => {
          if (received === "" && chunk.startsWith("HTTP/1.1 100")) socket.write(body);
          received += chunk;
        });
        socket.on("error", reject);
        socket.on("close", () => resolve(received));
        socket.setTimeout(5000, () => socket.destroy(new Error("no answer within 5 s")));
      });
      assert.match(raw, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
      assert.match(raw, /Webhook event triggered successfully/);
    });
  });
});

test("a request that comes while Herald shuts down is refused 503 in the error format, with Retry-After, and closes its connection", async () => {
  const herald = await startHerald();
  const { port } = new URL(herald.url);
  const socket = connect(Number(port), "127.0.0.1");
  let received = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    received += chunk;
  });
  const closed = new Promise((resolve) => socket.on("close", resolve));
  await new Promise((resolve) => socket.once("connect", resolve));
  // A trigger in flight (its body not all sent) holds the connection open while the server closes.
  const auth = `Authorization: Bearer ${TEST_API_KEY}\r\n`;
  socket.write(
    `POST /api/webhooks/trigger HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 24\r\n\r\n{"event":`,
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  const stopping = herald.stop();
  await new Promise((resolve) => setTimeout(resolve, 200));
  // The trigger's body ends, and the next request follows on the same connection.
  socket.write(`"user.created"}GET /api/webhooks HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
  await stopping;
  const [trigger, next] = parseAnswers(received);
  assert.equal(trigger?.status, 200, "the request in flight was answered");
  assert.equal(next?.status, 503);
  assert.equal(next?.body.success, false);
  assert.equal(next?.body.error, "Service Unavailable");
  assert.match(next?.body.message, /shutting down.*nothing was stored.*Send it again/);
  const head = received.slice(received.lastIndexOf("HTTP/1.1 503"));
  assert.match(head, /retry-after: 5\r\n/i);
  assert.match(head, /connection: close\r\n/i);
});

test("clients sending on keep-alive connections while Herald shuts down get an answer, 200 or 503, never a dropped connection", async () => {
  const herald = await startHerald();
  const body = JSON.stringify({ event: "user.created", data: { pad: "x".repeat(2_000) } });
  const outcomes = new Map<string, number>();
  const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  let stopped = false;
  // fetch (undici) writes a body after its headers, and reuses its connections.
  const client = async () => {
    while (!stopped) {
      try {
        const response = await fetch(`${herald.url}/api/webhooks/trigger`, {
          method: "POST",
          headers: { authorization: `Bearer ${TEST_API_KEY}`, "content-type": "application/json" },
          body,
        });
        await response.text();
        count(String(response.status));
        // Retry-After says 5 s: a client that heeds it sends nothing more in this test.
        if (response.status === 503) return;
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        // A connection refused or reset before it was made carried no request: that is told.
        if (cause?.message?.startsWith("connect ")) {
          count("not connected");
          await new Promise((resolve) => setTimeout(resolve, 10));
        } else count(`failed: ${cause?.message ?? String(error)}`);
      }
    }
  };
  const clients = Array.from({ length: 30 }, client);
  // Stopped while every client is busy sending, however slow the machine is today.
  await waitFor(
    () => ((outcomes.get("200") ?? 0) >= 90 ? true : undefined),
    10_000,
    "three rounds of triggers",
  );
  await herald.stop();
  stopped = true;
  await Promise.all(clients);
  const seen = Object.fromEntries(outcomes);
  assert.ok((outcomes.get("200") ?? 0) > 0, JSON.stringify(seen));
  assert.ok((outcomes.get("503") ?? 0) > 0, JSON.stringify(seen));
  for (const what of outcomes.keys()) {
    assert.ok(["200", "503", "not connected"].includes(what), JSON.stringify(seen));
  }
});

test("fetch sending a body refused before it is read gets the answer, not a broken pipe", async (t) => {
  // A process of its own: in this one, the client could not send while the server answers.
  const dataDir = mkdtempSync(join(tmpdir(), "herald-linger-"));
  const child = await spawnHerald({
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_DATA_DIR: dataDir,
    HERALD_INCOMING_SECRET_CUSTOM: "custom-secret",
  });
  t.after(async () => {
    await child.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const big = JSON.stringify({ event: "user.created", data: { pad: "x".repeat(5_000_000) } });
  const send = (path: string, key: string) =>
    fetch(`${child.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: big,
    }).then(
      async (answer) => `${answer.status} ${((await answer.json()) as { error: string }).error}`,
      (error: Error) => `failed: ${(error.cause as Error | undefined)?.message ?? error.message}`,
    );
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 10; i++) {
    for (const outcome of await Promise.all([
      send("/api/webhooks/trigger", TEST_API_KEY),
      send("/api/webhooks/trigger", "wrong-key"),
      send("/api/incoming-webhooks/custom", TEST_API_KEY),
    ])) {
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
  }
  assert.deepEqual(Object.fromEntries(outcomes), {
    "413 Payload Too Large": 20,
    "401 Unauthorized": 10,
  });
});
