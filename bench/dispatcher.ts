/**
 * The baseline: a naive in-memory dispatcher. It takes the same trigger request as Herald, answers
 * 200 at once, then POSTs the signed payload to every target with undici (fire and forget: no
 * persistence, no retries). Settings come as JSON in argv[2] (DispatcherSettings).
 */
import { createHmac, randomUUID } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import { Pool } from "undici";
import { listenAndAnnounce } from "./shared.js";

export interface DispatcherSettings {
  apiKey: string;
  triggerPath: string;
  /** Connections per target origin; Herald's default delivery concurrency. */
  connections: number;
  targets: Array<{ url: string; secret: string }>;
}

const settings = JSON.parse(process.argv[2] ?? "{}") as DispatcherSettings;
const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (!pool) {
    pool = new Pool(origin, { connections: settings.connections });
    pools.set(origin, pool);
  }
  return pool;
}

const targets = settings.targets.map(({ url, secret }) => {
  const parsed = new URL(url);
  return { pool: poolFor(parsed.origin), path: `${parsed.pathname}${parsed.search}`, secret };
});

function dispatch(event: string, data: unknown): void {
  const body = JSON.stringify({ event, timestamp: new Date().toISOString(), data });
  for (const { pool, path, secret } of targets) {
    pool
      .request({
        path,
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-webhook-signature": createHmac("sha256", secret).update(body).digest("hex"),
        },
        body,
      })
      .then((response) => response.body.dump())
      .catch(() => undefined);
  }
}

function answer(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    if (req.method !== "POST" || req.url !== settings.triggerPath) {
      return answer(res, 404, { success: false });
    }
    if (req.headers.authorization !== `Bearer ${settings.apiKey}`) {
      return answer(res, 401, { success: false });
    }
    let trigger: { event?: unknown; data?: unknown };
    try {
      trigger = JSON.parse(Buffer.concat(chunks).toString("utf8")) as typeof trigger;
    } catch {
      return answer(res, 400, { success: false });
    }
    if (typeof trigger.event !== "string") return answer(res, 400, { success: false });
    answer(res, 200, { success: true, eventId: randomUUID(), deliveries: targets.length });
    dispatch(trigger.event, trigger.data ?? {});
  });
});

listenAndAnnounce(server);
