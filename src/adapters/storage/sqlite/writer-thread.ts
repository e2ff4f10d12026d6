/**
 * The SQLite writer thread: commits batches of writes with synchronous=FULL, so the fsync of each
 * commit waits here and not on the event loop that serves requests and sends deliveries. Each write
 * runs in its own savepoint, so one failing write rolls back alone.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import { applyWriteOp, createWriteStatements, type WriteOp } from "./write-ops.js";

export interface WriterRequest {
  id: number;
  ops: WriteOp[];
}

export type WriterReply =
  | {
      id: number;
      results: Array<{ ok: true; value: unknown } | { ok: false; message: string; code?: string }>;
    }
  | { id: number; failure: string };

const port = parentPort;
if (!port) throw new Error("writer-thread runs only as a worker thread");

const db = new Database((workerData as { path: string }).path);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("foreign_keys = ON");
db.pragma("busy_timeout = 5000");
const statements = createWriteStatements(db);
const savepoint = db.transaction((op: WriteOp) => applyWriteOp(statements, op));
const commit = db.transaction((ops: WriteOp[]) =>
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

port.on("message", (message: WriterRequest | "close") => {
  if (message === "close") {
    db.close();
    port.close();
    return;
  }
  let reply: WriterReply;
  try {
    reply = { id: message.id, results: commit.immediate(message.ops) };
  } catch (error) {
    reply = { id: message.id, failure: (error as Error).message };
  }
  port.postMessage(reply);
});
