/**
 * The delivery floor of durability: the least a durable outbox does, as a reference beside Herald
 * and the baseline. It is the baseline dispatcher (same trigger endpoint, same undici sends) plus
 * SQLite: each trigger's event and one delivery row per target are committed before the 200, the
 * triggers of each turn of the event loop together (WAL, synchronous=FULL); each answer from a
 * receiver is committed as the delivery's outcome, the answers of a turn together. No webhooks
 * table, routing, retries, leases, history, API or worker thread.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { listenAndAnnounce } from "./shared.js";
import {
  answer,
  createSend,
  readSettings,
  type Trigger,
  triggerServer,
} from "./trigger-dispatch.js";

const settings = readSettings();
const { dir } = settings;
if (!dir) throw new Error("durable-outbox needs a directory for its database");
const send = createSend(settings);
const fanOut = settings.targets.length;

const db = new Database(join(dir, "outbox.db"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec(`CREATE TABLE events (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE deliveries (
  seq INTEGER PRIMARY KEY,
  event_seq INTEGER NOT NULL,
  target INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  status_code INTEGER,
  attempted_at INTEGER
);
-- What a restart sends again, found without reading the history.
CREATE INDEX deliveries_pending ON deliveries (seq) WHERE status = 'pending';`);
const insertEvent = db.prepare("INSERT INTO events (id, body, created_at) VALUES (?, ?, ?)");
const insertDelivery = db.prepare("INSERT INTO deliveries (event_seq, target) VALUES (?, ?)");
const recordOutcome = db.prepare(
  "UPDATE deliveries SET status = ?, status_code = ?, attempted_at = ? WHERE seq = ?",
);

/** [delivery seq, status code] */
type Outcome = [number, number];

let triggers: Trigger[] = [];
let outcomes: Outcome[] = [];

/**
 * Stores a batch of triggers; returns, per trigger, the seq of its first delivery row. A trigger's
 * rows are inserted one after another by the only writer, so their seqs follow on from it.
 */
const commitTriggers = db.transaction((batch: Trigger[]) => {
  const now = Date.now();
  const firstDeliveries: number[] = [];
  for (const { eventId, body } of batch) {
    const eventSeq = Number(insertEvent.run(eventId, body, now).lastInsertRowid);
    let first = 0;
    for (let target = 0; target < fanOut; target++) {
      const seq = Number(insertDelivery.run(eventSeq, target).lastInsertRowid);
      if (target === 0) first = seq;
    }
    firstDeliveries.push(first);
  }
  return firstDeliveries;
});

const commitOutcomes = db.transaction((batch: Outcome[]) => {
  const now = Date.now();
  for (const [seq, status] of batch) {
    recordOutcome.run(status >= 200 && status < 300 ? "success" : "failed", status, now, seq);
  }
});

function flushOutcomes(): void {
  const batch = outcomes;
  outcomes = [];
  commitOutcomes.immediate(batch);
}

function outcomeOf(seq: number) {
  return (status: number) => {
    if (outcomes.length === 0) setImmediate(flushOutcomes);
    outcomes.push([seq, status]);
  };
}

function flushTriggers(): void {
  const batch = triggers;
  triggers = [];
  const firstDeliveries = commitTriggers.immediate(batch);
  batch.forEach(({ eventId, body, res }, i) => {
    answer(res, 200, { success: true, eventId, deliveries: fanOut });
    const first = firstDeliveries[i] as number;
    for (let target = 0; target < fanOut; target++) send(target, body, outcomeOf(first + target));
  });
}

process.once("exit", () => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});
process.once("SIGTERM", () => process.exit(0));
listenAndAnnounce(
  triggerServer(settings, (trigger) => {
    if (triggers.length === 0) setImmediate(flushTriggers);
    triggers.push(trigger);
  }),
);
