/**
 * Sends delivery attempts over HTTP with undici: keep-alive connection pools per origin, a total
 * time limit per attempt, no redirects followed, at most 4 KB of each response kept, and private
 * addresses refused unless allowed. Limits: HTTP/1.1 only.
 */
import { Agent } from "undici";
import type { Clock } from "../domain/clock.js";
import type { AttemptResult, ClaimedDelivery } from "../domain/deliveries.js";
import type { Sender } from "../domain/ports.js";
import { parseRetryAfter } from "../domain/retry-policy.js";
import { signDelivery } from "../domain/signing.js";
import { checkLiteralHost, guardedLookup } from "./address-guard.js";

/** How much of a response body is kept. */
export const RESPONSE_BODY_LIMIT = 4096;
/** Response headers worth keeping in the attempt record. */
const KEPT_HEADERS = ["content-type", "content-length", "retry-after", "location", "x-request-id"];

export interface SenderOptions {
  clock: Clock;
  timeoutMs: number;
  allowPrivateTargets: boolean;
  userAgent: string;
}

function describeError(error: unknown, timeoutMs: number, aborted: boolean): string {
  if (aborted) return `timed out: no complete response within ${timeoutMs} ms`;
  const err = error as {
    code?: string;
    message?: string;
    cause?: { code?: string; message?: string };
  };
  const blocked = [err, err.cause].find((e) => e?.code === "HERALD_BLOCKED_ADDRESS");
  if (blocked?.message) return blocked.message;
  const code = err.code ?? err.cause?.code;
  const message = err.cause?.message ?? err.message ?? String(error);
  switch (code) {
    case "ECONNREFUSED":
      return `connection refused: nothing is listening at the webhook URL (${message})`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the webhook URL's host name could not be resolved (${message})`;
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return `the receiver closed the connection before answering (${message})`;
    case "UND_ERR_CONNECT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return `timed out: no complete response within ${timeoutMs} ms`;
    default:
      return `request failed: ${message}${code ? ` (${code})` : ""}`;
  }
}

async function readLimited(body: AsyncIterable<Buffer> & { dump(opts?: object): Promise<void> }) {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= RESPONSE_BODY_LIMIT) break;
  }
  // Reading the rest (up to a bound) keeps the connection reusable.
  await body.dump({ limit: 64 * 1024 }).catch(() => undefined);
  return Buffer.concat(chunks).subarray(0, RESPONSE_BODY_LIMIT).toString("utf8");
}

/** Creates the HTTP sender. */
export function createHttpSender(options: SenderOptions): Sender {
  const { clock, timeoutMs, allowPrivateTargets, userAgent } = options;
  const agent = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: {
      timeout: timeoutMs,
      ...(allowPrivateTargets ? {} : { lookup: guardedLookup }),
    },
  });

  return {
    async send(delivery: ClaimedDelivery): Promise<AttemptResult> {
      const startedAt = clock.now();
      const started = performance.now();
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), timeoutMs);
      try {
        const url = new URL(delivery.url);
        if (!allowPrivateTargets) checkLiteralHost(url.hostname);
        const signature = signDelivery(delivery.secret, delivery.id, delivery.body, startedAt);
        const response = await agent.request({
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": userAgent,
            "x-webhook-event": delivery.eventType,
            "x-webhook-delivery": delivery.id,
            "x-webhook-attempt": String(delivery.attempts + 1),
            ...signature,
          },
          body: delivery.body,
          signal: controller.signal,
        });
        const body = await readLimited(response.body);
        const headers: Record<string, string> = {};
        for (const name of KEPT_HEADERS) {
          const value = response.headers[name];
          if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
        }
        return {
          startedAt,
          durationMs: Math.round(performance.now() - started),
          response: { status: response.statusCode, headers, body },
          error: undefined,
          retryAfterMs: parseRetryAfter(headers["retry-after"], clock.now()),
        };
      } catch (error) {
        return {
          startedAt,
          durationMs: Math.round(performance.now() - started),
          response: undefined,
          error: describeError(error, timeoutMs, controller.signal.aborted),
          retryAfterMs: undefined,
        };
      } finally {
        clearTimeout(timer);
      }
    },

    close: () => agent.close(),
  };
}
