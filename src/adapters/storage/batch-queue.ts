/**
 * Group commit for asynchronous databases: items queued while earlier batches are being written
 * are written together in the next batch. Under light load a batch holds one item and goes out at
 * once; under heavy load batches grow, and the number of commits stays bounded by `maxInFlight`.
 */

interface Pending<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

export interface BatchQueueOptions<I, O> {
  /** Writes a batch in one transaction; returns one result per item, in order. */
  run(items: I[]): Promise<O[]>;
  /** Most items in one batch. */
  maxBatch: number;
  /** Most batches being written at once. */
  maxInFlight: number;
  /**
   * How long a new batch waits for company before it is written, in ms (default 0: it goes out on
   * the next turn of the event loop), unless it fills first. Below saturation each batch costs a
   * statement and a commit: for writes nobody is waiting on, a short wait makes fewer, larger ones.
   */
  lingerMs?: number;
  /**
   * Whether a failed batch is written again item by item, so that only the faulty items fail
   * (default: always). Not after an outage: every item would fail again, later, and a batch that
   * may have been committed would be written twice.
   */
  splitsAfter?(error: unknown): boolean;
}

/** Queues items and writes them in batches. */
export class BatchQueue<I, O> {
  private queue: Array<Pending<I, O>> = [];
  private inFlight = 0;
  private scheduled = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: BatchQueueOptions<I, O>) {}

  /** Queues `item`; resolves with its result once its batch is committed. */
  push(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves when nothing is queued or being written. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private schedule(): void {
    const linger = this.options.lingerMs ?? 0;
    const full = this.queue.length >= this.options.maxBatch;
    if (this.lingerTimer && full) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      this.scheduled = false;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      this.lingerTimer = undefined;
      this.flush();
    };
    // Let the current turn of the event loop add its items first; with a linger, a while longer.
    if (linger > 0 && !full) this.lingerTimer = setTimeout(go, linger);
    else setImmediate(go);
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      this.write(batch).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.flush();
        else if (this.inFlight === 0) for (const waiter of this.idleWaiters.splice(0)) waiter();
      });
    }
  }

  /**
   * Writes a batch; if it fails, writes its items one by one so only the faulty ones fail, unless
   * `splitsAfter` says the failure is not theirs.
   */
  private async write(batch: Array<Pending<I, O>>): Promise<void> {
    try {
      const results = await this.options.run(batch.map((pending) => pending.item));
      batch.forEach((pending, i) => {
        pending.resolve(results[i] as O);
      });
    } catch (error) {
      if (batch.length === 1 || this.options.splitsAfter?.(error) === false) {
        for (const pending of batch) pending.reject(error);
        return;
      }
      await Promise.all(batch.map((pending) => this.write([pending])));
    }
  }
}
