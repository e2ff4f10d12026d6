/**
 * The ingest floor of durability: the least a verified, deduplicated, durable receiver can do, as a
 * reference beside Herald and the bare server. A node:http server checks each body's hex
 * HMAC-SHA256 in `X-Webhook-Signature` (constant time), then stores the raw body and headers in
 * SQLite under a unique key (the body's SHA-256), committing the requests of each turn of the
 * event loop together (WAL, synchronous=FULL), and answers 200 once its commit is on disk. No
 * sources, rules, routing, rate limits or API. Arguments: the signing secret, and a directory of
 * its own for the database, removed at exit.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import Database from "better-sqlite3";
import { listenAndAnnounce } from "./shared.js";

const [secret = "", dir = ""] = process.argv.slice(2);
if (!secret || !dir) throw new Error("durable-sink needs a secret and a directory");

const db = new Database(join(dir, "floor.db"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec(`CREATE TABLE received (
  seq INTEGER PRIMARY KEY,
  dedupe_key TEXT NOT NULL UNIQUE,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  received_at INTEGER NOT NULL
)`);
const insert = db.prepare(
  "INSERT INTO received (dedupe_key, headers, body, received_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
);

interface Pending {
  key: string;
  headers: string;
  body: Buffer;
  res: ServerResponse;
}

let queue: Pending[] = [];
const commit = db.transaction((rows: Pending[]) => {
  const now = Date.now();
  for (const row of rows) insert.run(row.key, row.headers, row.body, now);
});

function flush(): void {
  const rows = queue;
  queue = [];
  commit.immediate(rows);
  for (const { res } of rows) {
    res.writeHead(200, { "content-type": "application/json" }).end('{"success":true}');
  }
}

function verified(req: IncomingMessage, body: Buffer): boolean {
  const given = Buffer.from(String(req.headers["x-webhook-signature"] ?? ""), "hex");
  const expected = createHmac("sha256", secret).update(body).digest();
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (!verified(req, body)) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"success":false}');
      return;
    }
    if (queue.length === 0) setImmediate(flush);
    queue.push({
      key: createHash("sha256").update(body).digest("hex"),
      headers: JSON.stringify(req.headers),
      body,
      res,
    });
  });
});

process.once("exit", () => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});
process.once("SIGTERM", () => process.exit(0));
listenAndAnnounce(server);
