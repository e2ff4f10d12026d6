/**
 * The SQLite writer thread: commits batches of writes, with an fsync (synchronous=FULL) for every
 * batch that holds more than attempt records, so the fsync waits here and not on the event loop
 * that serves requests and sends deliveries. One failing write rolls back alone: the batch is then
 * run again with a savepoint around each write.
 */
import {
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
  workerData,
} from "node:worker_threads";
import Database from "better-sqlite3";
import { applyWriteOp, createWriteStatements, type WriteOp } from "./write-ops.js";

export interface WriterRequest {
  id: number;
  ops: WriteOp[];
}

type Outcome = { ok: true; value: unknown } | { ok: false; message: string; code?: string };

/** The answer to one request: an outcome per write, or why the whole commit failed. */
export type WriterReply =
  | { id: number; results: Outcome[] }
  | { id: number; failure: string; code?: string };

/** Most writes in one transaction. */
const MAX_BATCH = 5000;

if (!parentPort) throw new Error("writer-thread runs only as a worker thread");
const port: MessagePort = parentPort;

const db = new Database((workerData as { path: string }).path);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("foreign_keys = ON");
db.pragma("busy_timeout = 5000");
db.pragma("cache_size = -32000");
const statements = createWriteStatements(db);
// The usual batch has no failing write, so it runs without a savepoint per write; when one fails,
// the batch is rolled back and run again with savepoints, so that the failing write alone is undone.
const commitFast = db.transaction((ops: WriteOp[]): Outcome[] =>
  ops.map((op) => ({ ok: true as const, value: applyWriteOp(statements, op) as unknown })),
);
const savepoint = db.transaction((op: WriteOp) => applyWriteOp(statements, op));
const commitIsolated = db.transaction((ops: WriteOp[]): Outcome[] =>
  ops.map((op) => {
    try {
      return { ok: true as const, value: savepoint(op) as unknown };
    } catch (error) {
      const err = error as { message?: string; code?: string };
      return {
        ok: false as const,
        message: err.message ?? String(error),
        ...(err.code ? { code: err.code } : {}),
      };
    }
  }),
);

/**
 * Attempt records alone are committed without waiting for the disk. A crash of the process loses
 * nothing (the OS holds the write); a power loss may forget the latest of them, and their
 * deliveries are then sent again, which at-least-once delivery allows. Anything a request was
 * answered for (an event, a webhook, an incoming webhook) commits with fsync, which also makes
 * every earlier commit durable, since the log is written in order.
 */
let synchronous: "FULL" | "NORMAL" = "FULL";
/**
 * Writes that may be forgotten on a power loss: attempt records, and slices of a webhook's history
 * deleted before the webhook itself (forgotten, they are there again, beside the webhook still).
 */
const MAY_WAIT_FOR_DISK = new Set<WriteOp["kind"]>(["attempt", "deleteDeliverySlice"]);
function setSynchronous(level: "FULL" | "NORMAL"): void {
  if (synchronous === level) return;
  db.pragma(`synchronous = ${level}`);
  synchronous = level;
}

function commit(ops: WriteOp[]): Outcome[] {
  setSynchronous(ops.every((op) => MAY_WAIT_FOR_DISK.has(op.kind)) ? "NORMAL" : "FULL");
  try {
    return commitFast.immediate(ops);
  } catch {
    // A failure of the database itself (disk full, I/O error) fails again here, for the whole batch.
    return commitIsolated.immediate(ops);
  }
}

let closing = false;

/** Commits `requests` in one transaction and answers each of them. */
function commitRequests(requests: WriterRequest[]): void {
  const ops = requests.flatMap((request) => request.ops);
  const replies: WriterReply[] = [];
  try {
    const results = commit(ops);
    let at = 0;
    for (const { id, ops: own } of requests) {
      replies.push({ id, results: results.slice(at, at + own.length) });
      at += own.length;
    }
  } catch (error) {
    const { message, code } = error as { message?: string; code?: string };
    for (const { id } of requests) {
      replies.push({ id, failure: message ?? String(error), ...(code ? { code } : {}) });
    }
  }
  port.postMessage(replies);
}

/**
 * Group commit: while a commit waits for its fsync, new requests queue up on the port; right
 * after it, every queued request is taken at once into the next transaction, without waiting for
 * the event loop that sent them.
 */
function takeQueued(into: WriterRequest[]): void {
  let size = into.reduce((sum, request) => sum + request.ops.length, 0);
  while (size < MAX_BATCH) {
    const next = receiveMessageOnPort(port);
    if (next === undefined) return;
    const message = next.message as WriterRequest | "close";
    if (message === "close") {
      closing = true;
      return;
    }
    into.push(message);
    size += message.ops.length;
  }
}

port.on("message", (message: WriterRequest | "close") => {
  if (message === "close") closing = true;
  else {
    const requests = [message];
    takeQueued(requests);
    while (requests.length > 0) {
      commitRequests(requests);
      requests.length = 0;
      if (closing) break;
      // Requests sent during that commit, or left over from a full batch, go in the next one.
      takeQueued(requests);
    }
  }
  if (closing) {
    db.close();
    port.close();
  }
});
