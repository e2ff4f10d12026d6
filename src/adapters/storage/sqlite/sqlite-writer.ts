/**
 * Group commit for SQLite, off the event loop: writes are sent to the writer thread as they come,
 * one message per turn of the event loop. While the thread commits, the next messages queue up, and
 * it takes them all into its next transaction; so under load a commit carries many writes, and its
 * fsync never blocks requests or deliveries. A write resolves once its transaction is committed.
 */
import type { Worker } from "node:worker_threads";
import { siblingModule, startThread } from "../../threads/start-thread.js";
import type { WriteOp, WriteResult } from "./write-ops.js";
import type { WriterReply, WriterRequest } from "./writer-thread.js";

interface Pending {
  op: WriteOp;
  resolve: (value: WriteResult) => void;
  reject: (error: Error) => void;
}

/**
 * How long a lazy write may wait for company, and how many make a message worth sending now. Below
 * saturation each message costs a commit: a longer wait makes fewer, larger ones.
 */
const LAZY_DELAY_MS = 10;
const LAZY_BATCH = 256;

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

/** Sends writes to a writer thread that owns the file's write connection. */
export class SqliteWriter {
  private readonly worker: Worker;
  private queue: Pending[] = [];
  /** Requests sent and not yet answered, by id. */
  private readonly sent = new Map<number, Pending[]>();
  private nextId = 1;
  private scheduled = false;
  private lazyTimer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly exited: Promise<void>;

  constructor(path: string) {
    this.worker = startThread(siblingModule(import.meta.url, "writer-thread"), { path });
    this.worker.on("message", (replies: WriterReply[]) => {
      for (const reply of replies) this.settle(reply);
    });
    this.worker.on("error", (error) => this.fail(error));
    this.exited = new Promise((resolve) => this.worker.once("exit", () => resolve()));
  }

  /** Queues a write; resolves with its result once committed. */
  write<T extends WriteResult>(op: WriteOp): Promise<T> {
    return this.enqueue<T>(op, false);
  }

  /**
   * Queues a write nobody waits on to answer a request (an attempt record): it goes out with the
   * next urgent write, or within `LAZY_DELAY_MS`, so that under load one message carries many.
   */
  writeLazily<T extends WriteResult>(op: WriteOp): Promise<T> {
    return this.enqueue<T>(op, true);
  }

  private enqueue<T extends WriteResult>(op: WriteOp, lazy: boolean): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (value: WriteResult) => void, reject });
      if (this.scheduled) return;
      if (lazy && this.queue.length < LAZY_BATCH) {
        this.lazyTimer ??= setTimeout(this.flush, LAZY_DELAY_MS);
        return;
      }
      this.scheduled = true;
      // Writes made in this turn of the event loop go out in one message; the thread gathers the
      // messages that arrive while it commits into its next transaction.
      setImmediate(this.flush);
    });
  }

  private readonly flush = () => {
    this.scheduled = false;
    if (this.lazyTimer) {
      clearTimeout(this.lazyTimer);
      this.lazyTimer = undefined;
    }
    this.send();
  };

  /** Commits what is queued, then stops the thread. */
  async close(): Promise<void> {
    if (this.queue.length > 0 || this.sent.size > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
    this.worker.postMessage("close");
    await this.exited;
  }

  private send(): void {
    if (this.queue.length === 0 || this.failure) return;
    const batch = this.queue;
    this.queue = [];
    const id = this.nextId++;
    this.sent.set(id, batch);
    const request: WriterRequest = { id, ops: batch.map((pending) => pending.op) };
    this.worker.postMessage(request);
  }

  private settle(reply: WriterReply): void {
    const batch = this.sent.get(reply.id);
    if (!batch) return;
    this.sent.delete(reply.id);
    if ("failure" in reply) {
      const error = new SqliteWriteError(
        `The database could not commit: ${reply.failure}`,
        reply.code,
      );
      for (const pending of batch) pending.reject(error);
    } else {
      reply.results.forEach((result, i) => {
        const pending = batch[i] as Pending;
        if (result.ok) pending.resolve(result.value as WriteResult);
        else pending.reject(new SqliteWriteError(result.message, result.code));
      });
    }
    if (this.sent.size === 0 && this.queue.length === 0) {
      for (const waiter of this.idleWaiters.splice(0)) waiter();
    }
  }

  private fail(error: Error): void {
    this.failure = new SqliteWriteError(`The SQLite writer stopped: ${error.message}`, undefined);
    for (const pending of [...[...this.sent.values()].flat(), ...this.queue]) {
      pending.reject(this.failure);
    }
    this.sent.clear();
    this.queue = [];
    for (const waiter of this.idleWaiters.splice(0)) waiter();
  }
}
