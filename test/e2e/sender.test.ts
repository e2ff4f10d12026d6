/** The HTTP sender against a real local server: what it keeps of a response, and how it fails. */

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { createHttpSender, RESPONSE_BODY_LIMIT } from "../../src/adapters/sender.js";
import type { ClaimedDelivery } from "../../src/domain/deliveries.js";

type Route = (req: IncomingMessage, res: ServerResponse) => void;

const routes: Record<string, Route> = {
  "/ok": (_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("OK"),
  "/big": (_req, res) => res.writeHead(200, { "content-length": "10000" }).end("a".repeat(10_000)),
  "/huge": (_req, res) => {
    // 1 MB in chunks, without a length: the sender must not wait for all of it.
    res.writeHead(200);
    const chunk = "b".repeat(16 * 1024);
    let sent = 0;
    const more = () => {
      while (sent < 64 && res.write(chunk)) sent++;
      if (sent < 64) res.once("drain", more);
      else res.end();
    };
    more();
  },
  "/headers": (_req, res) =>
    res
      .writeHead(503, {
        "content-type": "application/json",
        "content-length": "16",
        "retry-after": "7",
        "x-request-id": "req-42",
        "set-cookie": "session=secret",
      })
      .end('{"error":"busy"}'),
  "/nul": (_req, res) => res.writeHead(200).end("a\u0000b"),
  // "é" is two bytes in UTF-8: the 4 KB limit falls between them.
  "/split": (_req, res) =>
    res.writeHead(200).end(`${"a".repeat(RESPONSE_BODY_LIMIT - 1)}é and more`),
  "/gzip": (_req, res) =>
    res.writeHead(200, { "content-encoding": "gzip" }).end(gzipSync("compressed anyway")),
  // Answers written on the socket as they are, past Node's own checks.
  "/switching": (req) => req.socket.end("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
  "/status-99": (req) => req.socket.end("HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n"),
  "/not-http": (req) => req.socket.end("hello, this is not HTTP\r\n\r\n"),
  "/hang": () => undefined,
  "/drop": (req) => req.socket.destroy(),
  "/reset": (req) => req.socket.resetAndDestroy(),
  "/echo": (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () =>
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ headers: req.headers, body: Buffer.concat(chunks).toString() })),
    );
  },
};

let server: Server;
let origin: string;
const sockets = new Set<Socket>();

before(async () => {
  server = createServer((req, res) => {
    const route = routes[req.url ?? ""];
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  server.on("connection", (socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function delivery(path: string): ClaimedDelivery {
  return {
    id: "del_1_abc",
    webhookId: "wh_1_abc",
    eventId: "evt_1_abc",
    eventType: "user.created",
    url: `${origin}${path}`,
    secret: "s3cret",
    body: '{"event":"user.created","timestamp":"2026-11-30T00:00:00.000Z","data":{}}',
    attempts: 0,
    createdAt: 1,
  };
}

function sender(timeoutMs = 2000) {
  return createHttpSender({
    clock: { now: () => Date.now() },
    timeoutMs,
    allowPrivateTargets: true,
    userAgent: "Herald/test",
  });
}

/** Runs `use` with a sender made for it, closed afterwards. */
async function withSender(
  use: (http: ReturnType<typeof sender>) => Promise<void>,
  timeoutMs?: number,
) {
  const http = sender(timeoutMs);
  try {
    await use(http);
  } finally {
    await http.close();
  }
}

describe("HTTP sender", () => {
  test("sends the signed body with Herald's headers", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/echo"));
      assert.equal(result.error, undefined);
      const echoed = JSON.parse(result.response?.body ?? "{}") as {
        headers: Record<string, string>;
        body: string;
      };
      assert.equal(echoed.body, delivery("/echo").body);
      assert.equal(echoed.headers["user-agent"], "Herald/test");
      assert.equal(echoed.headers["x-webhook-delivery"], "del_1_abc");
      assert.equal(echoed.headers["x-webhook-event"], "user.created");
      assert.equal(
        echoed.headers["x-webhook-signature"],
        createHmac("sha256", "s3cret").update(echoed.body).digest("hex"),
      );
    });
  });

  test("keeps the first 4 KB of a larger body and reuses the connection", async () => {
    await withSender(async (http) => {
      const before = sockets.size;
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await http.send(delivery("/big")));
      for (const result of results) {
        assert.equal(result.response?.status, 200);
        assert.equal(result.response?.body, "a".repeat(RESPONSE_BODY_LIMIT));
      }
      // Each body was read to its end, so connections go back to the pool instead of closing.
      assert.ok(sockets.size - before <= 2, `${sockets.size - before} connections for 6 attempts`);
    });
  });

  test("stops reading a huge body and still answers with its start", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/huge"));
      assert.equal(result.error, undefined);
      assert.equal(result.response?.status, 200);
      assert.equal(result.response?.body, "b".repeat(RESPONSE_BODY_LIMIT));
    });
  });

  test("keeps only the headers of interest", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/headers"));
      assert.equal(result.response?.status, 503);
      assert.deepEqual(result.response?.headers, {
        "content-type": "application/json",
        "content-length": "16",
        "retry-after": "7",
        "x-request-id": "req-42",
      });
      assert.equal(result.response?.body, '{"error":"busy"}');
      assert.ok(result.retryAfterMs !== undefined && result.retryAfterMs >= 6000);
    });
  });

  test("drops NUL characters, which text columns cannot hold", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/nul"));
      assert.equal(result.response?.body, "ab");
    });
  });

  test("a character cut by the 4 KB limit is left out rather than kept broken", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/split"));
      assert.equal(result.response?.body, "a".repeat(RESPONSE_BODY_LIMIT - 1));
    });
  });

  test("keeps Content-Encoding, which explains a compressed body", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/gzip"));
      assert.equal(result.response?.headers["content-encoding"], "gzip");
    });
  });

  test("https:// to a server without TLS says to use http://, in one line", async () => {
    await withSender(async (http) => {
      const result = await http.send({
        ...delivery("/ok"),
        url: `${origin.replace("http:", "https:")}/ok`,
      });
      assert.match(
        result.error ?? "",
        /^the receiver does not speak TLS on this port \(ERR_SSL_WRONG_VERSION_NUMBER\)\. Use http:\/\/ instead of https:\/\//,
      );
      assert.doesNotMatch(result.error ?? "", /\n|openssl|\.c:\d/);
    });
  });

  test("a self-signed certificate is named, with what to do", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-tls-"));
    try {
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "2",
          "-subj",
          "/CN=127.0.0.1",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem"),
        ],
        { stdio: "ignore" },
      );
      const tls = createTlsServer(
        { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) },
        (_req, res) => res.writeHead(200).end("OK"),
      );
      await new Promise<void>((resolve) => tls.listen(0, "127.0.0.1", resolve));
      try {
        await withSender(async (http) => {
          const port = (tls.address() as AddressInfo).port;
          const result = await http.send({ ...delivery("/"), url: `https://127.0.0.1:${port}/` });
          assert.equal(result.response, undefined);
          assert.match(
            result.error ?? "",
            /^the receiver's TLS certificate is self-signed, so Herald cannot trust it \(DEPTH_ZERO_SELF_SIGNED_CERT\)\. Give the receiver a certificate/,
          );
        });
      } finally {
        tls.closeAllConnections();
        await new Promise((resolve) => tls.close(resolve));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a receiver that never answers times out with plain words", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/hang"));
      assert.equal(result.response, undefined);
      assert.match(result.error ?? "", /^timed out: no response within 300 ms/);
    }, 300);
  });

  test("an answer with a status no webhook answer can have is told in plain words", async () => {
    await withSender(async (http) => {
      for (const path of ["/switching", "/status-99"]) {
        const result = await http.send(delivery(path));
        assert.equal(result.response, undefined, path);
        assert.match(result.error ?? "", /a status no answer to a webhook can have/, path);
        assert.doesNotMatch(result.error ?? "", /assert/i, path);
      }
    });
  });

  test("an answer that is not HTTP is told without the parser's words", async () => {
    await withSender(async (http) => {
      const result = await http.send(delivery("/not-http"));
      assert.equal(result.response, undefined);
      assert.match(
        result.error ?? "",
        /not HTTP\/1\.1 \(it does not begin with an HTTP status line\)/,
      );
      assert.doesNotMatch(result.error ?? "", /RTSP|ICE/);
    });
  });

  test("a connection dropped before the answer is told in plain words, without the client's", async () => {
    await withSender(async (http) => {
      for (const [path, how] of [
        ["/drop", /^the receiver closed the connection before answering\. /],
        ["/reset", /^the receiver reset the connection \(ECONNRESET\) before answering\. /],
      ] as const) {
        const result = await http.send(delivery(path));
        assert.equal(result.response, undefined, path);
        assert.match(result.error ?? "", how, path);
        assert.match(result.error ?? "", /its logs say why/, path);
        // Over http://, a server that speaks only TLS drops the connection too.
        assert.match(result.error ?? "", /webhook URL must start with https:\/\/$/, path);
        assert.doesNotMatch(result.error ?? "", /other side closed|socket hang up/, path);
      }
    });
  });

  test("a closed port is reported as refused", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    await withSender(async (http) => {
      const result = await http.send({ ...delivery("/"), url: `http://127.0.0.1:${port}/` });
      assert.equal(result.response, undefined);
      assert.match(result.error ?? "", /^connection refused/);
    });
  });
});
