/**
 * A delivery thread: sends the attempts the main thread hands it with its own HTTP sender, so the
 * HTTP client's work (the largest share of a delivery's CPU) runs beside the event loop that serves
 * requests and keeps the queue, not on it. Results go back in one message per turn of its loop.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { systemClock } from "../domain/clock.js";
import type { AttemptResult, ClaimedDelivery } from "../domain/deliveries.js";
import { createHttpSender, type SenderOptions } from "./sender.js";

export interface SendRequest {
  id: number;
  delivery: ClaimedDelivery;
}

export interface SendReply {
  id: number;
  result: AttemptResult;
}

export type SenderThreadOptions = Omit<SenderOptions, "clock">;

if (!parentPort) throw new Error("sender-thread runs only as a worker thread");
const port: MessagePort = parentPort;
const sender = createHttpSender({ ...(workerData as SenderThreadOptions), clock: systemClock });

let replies: SendReply[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  if (replies.length === 0) return;
  const batch = replies;
  replies = [];
  port.postMessage(batch);
}

function reply(id: number, result: AttemptResult): void {
  replies.push({ id, result });
  if (scheduled) return;
  scheduled = true;
  setImmediate(flush);
}

port.on("message", (message: SendRequest[] | "close") => {
  if (message === "close") {
    // Attempts still in flight are cut off; their results go back before the port closes.
    void sender.close().finally(() => {
      flush();
      port.close();
    });
    return;
  }
  for (const { id, delivery } of message) {
    void sender.send(delivery).then((result) => reply(id, result));
  }
});
