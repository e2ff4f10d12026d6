/**
 * Group commit for SQLite, off the event loop: writes are queued here and sent to the writer thread
 * in batches. While one batch is being committed, the next one fills up; so under load a commit
 * carries many writes, and its fsync never blocks requests or deliveries. A write resolves once
 * the transaction holding it is committed.
 */
import { Worker } from "node:worker_threads";
import type { WriteOp, WriteResult } from "./write-ops.js";
import type { WriterReply } from "./writer-thread.js";

interface Pending {
  op: WriteOp;
  resolve: (value: WriteResult) => void;
  reject: (error: Error) => void;
}

/** Error of a write the database refused (a constraint, say); `code` is SQLite's. */
export class SqliteWriteError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = "SqliteWriteError";
  }
}

const FROM_SOURCE = import.meta.url.endsWith(".ts");
const ENTRY = new URL(FROM_SOURCE ? "./writer-thread.ts" : "./writer-thread.js", import.meta.url);
/** Starts the writer thread; run from TypeScript sources (tests, development), it loads tsx first. */
function startThread(path: string): Worker {
  if (!FROM_SOURCE) return new Worker(ENTRY, { workerData: { path } });
  const boot = `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(ENTRY.href)}); });`;
  return new Worker(boot, { eval: true, workerData: { path } });
}

/** Sends writes to a writer thread that owns the file's write connection. */
export class SqliteWriter {
  private readonly worker: Worker;
  private queue: Pending[] = [];
  /** Batches sent and not yet answered, oldest first; the thread commits them in order. */
  private inFlight: Array<{ id: number; batch: Pending[] }> = [];
  private nextId = 1;
  private scheduled = false;
  private failure: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly exited: Promise<void>;

  constructor(
    path: string,
    private readonly maxBatch = 2000,
    /** A second batch waits in the thread while the first commits, so the thread never idles. */
    private readonly maxInFlight = 2,
  ) {
    this.worker = startThread(path);
    this.worker.on("message", (reply: WriterReply) => this.settle(reply));
    this.worker.on("error", (error) => this.fail(error));
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
  }

  /** Queues a write; resolves with its result once committed. */
  write<T extends WriteResult>(op: WriteOp): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: WriteResult) => void, reject });
      if (!this.scheduled && this.inFlight.length < this.maxInFlight) {
        this.scheduled = true;
        // Writes made in this turn of the event loop go out together.
        setImmediate(() => {
          this.scheduled = false;
          this.send();
        });
      }
    });
  }

  /** Commits what is queued, then stops the thread. */
  async close(): Promise<void> {
    if (this.queue.length > 0 || this.inFlight.length > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    this.worker.postMessage("close");
    await this.exited;
  }

  private send(): void {
    if (this.inFlight.length >= this.maxInFlight) return;
    if (this.queue.length === 0) {
      if (this.inFlight.length === 0) for (const waiter of this.idleWaiters.splice(0)) waiter();
      return;
    }
    const batch = this.queue.splice(0, this.maxBatch);
    const id = this.nextId++;
    this.inFlight.push({ id, batch });
    this.worker.postMessage({ id, ops: batch.map((pending) => pending.op) });
  }

  private settle(reply: WriterReply): void {
    const current = this.inFlight[0];
    if (!current || current.id !== reply.id) return;
    this.inFlight.shift();
    if ("failure" in reply) {
      const error = new SqliteWriteError(
        `The database could not commit: ${reply.failure}`,
        undefined,
      );
      for (const pending of current.batch) pending.reject(error);
    } else {
      reply.results.forEach((result, i) => {
        const pending = current.batch[i] as Pending;
        if (result.ok) pending.resolve(result.value as WriteResult);
        else pending.reject(new SqliteWriteError(result.message, result.code));
      });
    }
    this.send();
  }

  private fail(error: Error): void {
    this.failure = new SqliteWriteError(`The SQLite writer stopped: ${error.message}`, undefined);
    for (const pending of [...this.inFlight.flatMap((sent) => sent.batch), ...this.queue]) {
      pending.reject(this.failure);
    }
    this.inFlight = [];
    this.queue = [];
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }
}
