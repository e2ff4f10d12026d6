/**
 * Group commit for SQLite: writes queued during one turn of the event loop are committed together
 * in one transaction, so a burst of concurrent requests pays for one fsync instead of one each.
 * Each queued write runs in its own savepoint, so one failing write rolls back alone.
 * Limits: better-sqlite3 is synchronous, so a flush holds the event loop for the length of the commit.
 */
import type { Database, Transaction } from "better-sqlite3";

interface QueuedWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** Batches synchronous writes into one transaction per event-loop turn. */
export class WriteBatcher {
  private queue: QueuedWrite[] = [];
  private scheduled = false;
  private readonly savepoint: (run: () => unknown) => unknown;
  private readonly commitAll: Transaction<
    (writes: QueuedWrite[]) => Array<{ ok: boolean; value: unknown }>
  >;

  constructor(
    db: Database,
    private readonly maxBatch = 2000,
  ) {
    // A transaction function called inside another one runs as a savepoint.
    this.savepoint = db.transaction((run: () => unknown) => run());
    this.commitAll = db.transaction((writes: QueuedWrite[]) =>
      writes.map((write) => {
        try {
          return { ok: true, value: this.savepoint(write.run) };
        } catch (error) {
          return { ok: false, value: error };
        }
      }),
    );
  }

  /** Queues a write; resolves with its result once the transaction holding it is committed. */
  write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued now. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const writes = this.queue;
    this.queue = [];
    let results: Array<{ ok: boolean; value: unknown }>;
    try {
      results = this.commitAll.immediate(writes);
    } catch (error) {
      for (const write of writes) write.reject(error);
      return;
    }
    results.forEach((result, i) => {
      const write = writes[i] as QueuedWrite;
      if (result.ok) write.resolve(result.value);
      else write.reject(result.value);
    });
  }
}
