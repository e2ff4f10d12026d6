/**
 * Sends delivery attempts over HTTP with undici: keep-alive connection pools per origin, a time
 * limit on connecting, on the response headers and on each pause in the body, no redirects
 * followed, at most 4 KB of each response kept (the connection is reused when the rest is small),
 * response bytes that text cannot hold dropped, and private addresses refused unless allowed.
 * Limits: HTTP/1.1 only.
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

function describeError(error: unknown, timeoutMs: number): string {
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
      return `timed out: could not connect within ${timeoutMs} ms`;
    case "UND_ERR_HEADERS_TIMEOUT":
      return `timed out: no response within ${timeoutMs} ms`;
    case "UND_ERR_BODY_TIMEOUT":
      return `timed out: the response body stopped for ${timeoutMs} ms`;
    default:
      return `request failed: ${message}${code ? ` (${code})` : ""}`;
  }
}

/** Beyond this much, the rest of a response is not read: the connection is closed instead. */
const DRAIN_LIMIT = 64 * 1024;

/** Keeps the first 4 KB of a body; reads (and drops) up to 64 KB more so the connection can be reused. */
async function readLimited(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let seen = 0;
  for await (const chunk of body) {
    seen += chunk.length;
    if (kept < RESPONSE_BODY_LIMIT) {
      chunks.push(chunk);
      kept += chunk.length;
    }
    if (seen > DRAIN_LIMIT) break;
  }
  return cleanText(Buffer.concat(chunks).subarray(0, RESPONSE_BODY_LIMIT).toString("utf8"));
}

/** NUL cannot be stored as text in every database. */
function cleanText(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "") : text;
}

interface Target {
  origin: string;
  path: string;
  hostname: string;
}

const targets = new Map<string, Target>();

/** Splits a webhook URL once; webhooks are few and their URLs rarely change. */
function parseTarget(url: string): Target {
  let target = targets.get(url);
  if (!target) {
    const parsed = new URL(url);
    target = {
      origin: parsed.origin,
      path: `${parsed.pathname}${parsed.search}`,
      hostname: parsed.hostname,
    };
    if (targets.size >= 10_000) targets.clear();
    targets.set(url, target);
  }
  return target;
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
      try {
        const target = parseTarget(delivery.url);
        if (!allowPrivateTargets) checkLiteralHost(target.hostname);
        const signature = signDelivery(delivery.secret, delivery.id, delivery.body, startedAt);
        const response = await agent.request({
          origin: target.origin,
          path: target.path,
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
        });
        const length = Number(response.headers["content-length"]);
        // A small body of announced length is read in one go; anything else chunk by chunk, capped.
        const body =
          length >= 0 && length <= RESPONSE_BODY_LIMIT
            ? cleanText(await response.body.text())
            : await readLimited(response.body);
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
          error: describeError(error, timeoutMs),
          retryAfterMs: undefined,
        };
      }
    },

    close: () => agent.close(),
  };
}
