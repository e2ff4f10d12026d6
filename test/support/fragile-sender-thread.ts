/**
 * A stand-in delivery thread for tests of the threaded sender: it answers every attempt with a 200
 * at once, holds any attempt whose delivery id starts with `hold`, and exits with code 1 when it
 * is handed a delivery whose id is `crash`, as a thread that fails would.
 */
import { parentPort } from "node:worker_threads";
import type { SendReply, SendRequest } from "../../src/adapters/sender-thread.js";

const port = parentPort;
if (!port) throw new Error("fragile-sender-thread runs only as a worker thread");

port.on("message", (message: SendRequest[] | "close") => {
  if (message === "close") {
    port.close();
    return;
  }
  const replies: SendReply[] = [];
  for (const { id, delivery } of message) {
    if (delivery.id === "crash") process.exit(1);
    if (delivery.id.startsWith("hold")) continue;
    replies.push({
      id,
      result: {
        startedAt: Date.now(),
        durationMs: 0,
        response: { status: 200, headers: {}, body: `sent ${delivery.id}` },
        error: undefined,
        retryAfterMs: undefined,
      },
    });
  }
  if (replies.length > 0) port.postMessage(replies);
});
