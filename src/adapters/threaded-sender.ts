/**
 * A Sender that sends from delivery threads (see sender-thread.ts): attempts are handed out in
 * turn, in one message per thread and turn of the event loop, and each resolves when its thread
 * reports the result. A thread that stops unexpectedly fails its attempts in flight (they are
 * retried like any failed attempt) and is replaced.
 */
import type { Worker } from "node:worker_threads";
import type { Clock } from "../domain/clock.js";
import type { AttemptResult, ClaimedDelivery } from "../domain/deliveries.js";
import type { Sender } from "../domain/ports.js";
import type { SenderThreadOptions, SendReply, SendRequest } from "./sender-thread.js";
import { siblingModule, startThread } from "./threads/start-thread.js";

const ENTRY = siblingModule(import.meta.url, "sender-thread");

interface DeliveryThread {
  worker: Worker;
  outbox: SendRequest[];
  waiting: Map<number, (result: AttemptResult) => void>;
  exited: Promise<void>;
}

/** Creates a sender backed by `threads` delivery threads. */
export function createThreadedSender(
  options: SenderThreadOptions & {
    threads: number;
    clock: Clock;
    /** The threads' module: sender-thread by default; tests pass threads of their own. */
    entry?: URL;
  },
): Sender {
  const { threads: count, clock, entry = ENTRY, ...threadOptions } = options;
  let closing = false;
  let nextId = 1;
  let turn = 0;
  let scheduled = false;

  function start(): DeliveryThread {
    const worker = startThread(entry, threadOptions);
    const thread: DeliveryThread = {
      worker,
      outbox: [],
      waiting: new Map(),
      exited: new Promise((resolve) => worker.once("exit", () => resolve())),
    };
    worker.on("message", (replies: SendReply[]) => {
      for (const { id, result } of replies) {
        const resolve = thread.waiting.get(id);
        thread.waiting.delete(id);
        resolve?.(result);
      }
    });
    const replace = (why: string) => {
      if (closing) return;
      const index = threads.indexOf(thread);
      if (index === -1) return;
      threads[index] = start();
      const now = clock.now();
      for (const resolve of thread.waiting.values()) {
        resolve({
          startedAt: now,
          durationMs: 0,
          response: undefined,
          error: `Herald's delivery thread stopped (${why}); the attempt will be made again`,
          retryAfterMs: undefined,
        });
      }
      thread.waiting.clear();
    };
    worker.on("error", (error) => replace(error.message));
    worker.on("exit", (code) => replace(`exit code ${code}`));
    return thread;
  }

  const threads: DeliveryThread[] = Array.from({ length: count }, start);

  function flush(): void {
    scheduled = false;
    for (const thread of threads) {
      if (thread.outbox.length === 0) continue;
      const batch = thread.outbox;
      thread.outbox = [];
      thread.worker.postMessage(batch);
    }
  }

  return {
    send(delivery: ClaimedDelivery): Promise<AttemptResult> {
      const thread = threads[turn++ % threads.length] as DeliveryThread;
      const id = nextId++;
      return new Promise<AttemptResult>((resolve) => {
        thread.waiting.set(id, resolve);
        thread.outbox.push({ id, delivery });
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      });
    },

    async close() {
      closing = true;
      flush();
      for (const thread of threads) thread.worker.postMessage("close");
      await Promise.all(threads.map((thread) => thread.exited));
    },
  };
}
