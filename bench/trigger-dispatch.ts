/**
 * What the two reference dispatchers (dispatcher.ts, durable-outbox.ts) share: the trigger endpoint
 * Herald serves, and sending the signed payload to each target with undici. Settings come as JSON
 * in argv[2] (DispatcherSettings).
 */
import { createHmac, randomUUID } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import { Pool } from "undici";

export interface DispatcherSettings {
  apiKey: string;
  triggerPath: string;
  /** Connections per target origin; Herald's default delivery concurrency. */
  connections: number;
  targets: Array<{ url: string; secret: string }>;
  /** The durable outbox's own directory for its database, removed at exit. */
  dir?: string;
}

export function readSettings(): DispatcherSettings {
  return JSON.parse(process.argv[2] ?? "{}") as DispatcherSettings;
}

/** A trigger accepted: its payload, ready to send, and the event's id. */
export interface Trigger {
  eventId: string;
  body: string;
  res: ServerResponse;
}

export function answer(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/**
 * The trigger endpoint: checks the path, the key and the JSON, and hands `accept` each valid
 * trigger, which answers it (at once, or after a commit).
 */
export function triggerServer(
  settings: DispatcherSettings,
  accept: (trigger: Trigger) => void,
): Server {
  return createServer((req, res) => {
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
      const body = JSON.stringify({
        event: trigger.event,
        timestamp: new Date().toISOString(),
        data: trigger.data ?? {},
      });
      accept({ eventId: randomUUID(), body, res });
    });
  });
}

/**
 * Sends a payload to target `index`, signed with its secret; `done` hears the answer's status, or
 * 0 when the request failed.
 */
export type Send = (index: number, body: string, done?: (status: number) => void) => void;

export function createSend(settings: DispatcherSettings): Send {
  const pools = new Map<string, Pool>();
  const poolFor = (origin: string) => {
    let pool = pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: settings.connections });
      pools.set(origin, pool);
    }
    return pool;
  };
  const targets = settings.targets.map(({ url, secret }) => {
    const parsed = new URL(url);
    return { pool: poolFor(parsed.origin), path: `${parsed.pathname}${parsed.search}`, secret };
  });
  return (index, body, done) => {
    const { pool, path, secret } = targets[index]!;
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
      .then(async (response) => {
        await response.body.dump();
        done?.(response.statusCode);
      })
      .catch(() => done?.(0));
  };
}
