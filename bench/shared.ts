/**
 * What the bench and its helpers (receiver, baseline dispatcher, sink) share: the messages they
 * exchange, a clock that agrees across processes, and the helper side of the link to the bench.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parentPort } from "node:worker_threads";

/** One delivery as the receiver first saw it: [webhook path, data.n, arrival time in ms]. */
export type Arrival = [path: string, n: number, arrivedAt: number];

/** Everything the receiver saw. */
export interface ReceiverReport {
  /** The first arrival of each (path, data.n). */
  arrivals: Arrival[];
  /** Arrivals of a (path, data.n) already seen. */
  duplicates: number;
  badSignatures: number;
  /** Bodies without a numeric data.n. */
  malformed: number;
  /** Share of the time from the first to the last request that the receiver's event loop was busy. */
  busyShare: number;
}

/** Messages from the bench to a helper. */
export type ToHelper =
  | { type: "configure"; secrets: Record<string, string> }
  | { type: "progress" }
  | { type: "reset" }
  | { type: "report" };

/** Messages from a helper to the bench. */
export type FromHelper =
  | { type: "listening"; port: number }
  | { type: "configured" }
  | { type: "reset" }
  | { type: "progress"; unique: number }
  | { type: "report"; report: ReceiverReport };

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Sends a message to the bench, whether this helper is a forked process or a worker thread. */
export function sendToBench(message: FromHelper): void {
  if (parentPort) parentPort.postMessage(message);
  else process.send?.(message);
}

/** Calls `handler` with each message from the bench. */
export function onBenchMessage(handler: (message: ToHelper) => void): void {
  if (parentPort) parentPort.on("message", handler);
  else process.on("message", (message) => handler(message as ToHelper));
}

/** Listens on a free 127.0.0.1 port and tells the bench which; a helper process ends with the bench. */
export function listenAndAnnounce(server: Server): void {
  if (!parentPort) process.once("disconnect", () => process.exit(0));
  server.listen(0, "127.0.0.1", () => {
    sendToBench({ type: "listening", port: (server.address() as AddressInfo).port });
  });
}
