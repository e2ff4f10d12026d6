/**
 * The webhook receiver: answers 200 "OK", checks X-Webhook-Signature against the secret of the
 * request's path, and records the first arrival time of each (path, data.n).
 * Runs as a forked process or a worker thread.
 */
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { type EventLoopUtilization, performance } from "node:perf_hooks";
import {
  type Arrival,
  listenAndAnnounce,
  onBenchMessage,
  sendToBench,
  wallClockMs,
} from "./shared.js";

let secrets = new Map<string, string>();
const arrivals = new Map<string, Arrival>();
let duplicates = 0;
let badSignatures = 0;
let malformed = 0;
let firstRequest: EventLoopUtilization | undefined;
let lastRequest: EventLoopUtilization | undefined;

function signatureIsValid(path: string, body: Buffer, signature: string | undefined): boolean {
  const secret = secrets.get(path);
  if (secret === undefined || signature === undefined) return false;
  return createHmac("sha256", secret).update(body).digest("hex") === signature;
}

function dataN(body: Buffer): number | undefined {
  try {
    const n = (JSON.parse(body.toString("utf8")) as { data?: { n?: unknown } }).data?.n;
    return typeof n === "number" ? n : undefined;
  } catch {
    return undefined;
  }
}

function record(path: string, body: Buffer, signature: string | undefined, arrivedAt: number) {
  if (!signatureIsValid(path, body, signature)) badSignatures++;
  const n = dataN(body);
  if (n === undefined) {
    malformed++;
    return;
  }
  const key = `${path} ${n}`;
  if (arrivals.has(key)) duplicates++;
  else arrivals.set(key, [path, n, arrivedAt]);
}

function busyShare(): number {
  if (!firstRequest || !lastRequest) return 0;
  return performance.eventLoopUtilization(lastRequest, firstRequest).utilization;
}

const server = createServer((req, res) => {
  firstRequest ??= performance.eventLoopUtilization();
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const signature = req.headers["x-webhook-signature"];
    record(
      req.url ?? "",
      Buffer.concat(chunks),
      Array.isArray(signature) ? signature[0] : signature,
      wallClockMs(),
    );
    res.writeHead(200, { "content-type": "text/plain" }).end("OK");
    lastRequest = performance.eventLoopUtilization();
  });
});

onBenchMessage((message) => {
  switch (message.type) {
    case "configure":
      secrets = new Map(Object.entries(message.secrets));
      sendToBench({ type: "configured" });
      break;
    case "reset":
      // Forgets the warm-up's deliveries, so the measured run starts from nothing.
      arrivals.clear();
      duplicates = 0;
      badSignatures = 0;
      malformed = 0;
      firstRequest = undefined;
      lastRequest = undefined;
      sendToBench({ type: "reset" });
      break;
    case "progress":
      sendToBench({ type: "progress", unique: arrivals.size });
      break;
    case "report":
      sendToBench({
        type: "report",
        report: {
          arrivals: [...arrivals.values()],
          duplicates,
          badSignatures,
          malformed,
          busyShare: busyShare(),
        },
      });
      break;
  }
});

listenAndAnnounce(server);
