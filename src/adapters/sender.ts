/**
 * Sends delivery attempts over HTTP with undici: keep-alive connection pools per origin, one time
 * limit on each whole attempt (from connecting to the end of the answer), no redirects followed, at most 4 KB of each response kept (the connection is reused when the rest is small),
 * response bytes that text cannot hold dropped, and private addresses refused unless allowed.
 * Limits: HTTP/1.1 only; an interim 100 Continue the receiver sends unasked fails the attempt.
 */
import { Agent, type Dispatcher } from "undici";
import type { Clock } from "../domain/clock.js";
import type { AttemptResult, ClaimedDelivery } from "../domain/deliveries.js";
import type { Sender } from "../domain/ports.js";
import { parseRetryAfter } from "../domain/retry-policy.js";
import { signDelivery } from "../domain/signing.js";
import { firstLine } from "../domain/text.js";
import { checkLiteralHost, guardedLookup } from "./address-guard.js";

/** How much of a response body is kept. */
export const RESPONSE_BODY_LIMIT = 4096;
/** Response headers worth keeping in the attempt record. */
const KEPT_HEADERS = new Set([
  "content-type",
  "content-length",
  // Herald asks for no compression; a receiver that compresses anyway explains a garbled body.
  "content-encoding",
  "retry-after",
  "location",
  "x-request-id",
]);

export interface SenderOptions {
  clock: Clock;
  timeoutMs: number;
  allowPrivateTargets: boolean;
  userAgent: string;
}

/** The address guard's refusal, which undici may wrap as the cause of its own error. */
function blockedAddress(error: unknown): { message?: string } | undefined {
  type Coded = { code?: string; message?: string };
  const err = error as Coded & { cause?: Coded };
  return [err, err.cause].find((e) => e?.code === "HERALD_BLOCKED_ADDRESS");
}

/** True for an attempt ended by `close()` (Herald stopping) before the receiver answered. */
function cutOffByClose(error: unknown): boolean {
  const err = error as { code?: string; cause?: { code?: string } };
  return (err.code ?? err.cause?.code) === "UND_ERR_DESTROYED";
}

/**
 * What a dropped connection means. Over http:// it may be a server that speaks only TLS; over
 * https:// that cannot be the reason.
 */
function closedBeforeAnswer(how: string, plainHttp: boolean): string {
  return `the receiver ${how} before answering. Check that it is running and that it did not fail on this request (its logs say why)${plainHttp ? "; if it serves HTTPS on this port, the webhook URL must start with https://" : ""}`;
}

function describeError(error: unknown, timeoutMs: number, plainHttp: boolean): string {
  const err = error as {
    code?: string;
    message?: string;
    cause?: { code?: string; message?: string };
  };
  const blocked = blockedAddress(error);
  if (blocked?.message) return blocked.message;
  const code = err.code ?? err.cause?.code;
  const message = err.cause?.message ?? err.message ?? String(error);
  if ((error as Error).name === "HTTPParserError" || code?.startsWith("HPE_")) {
    const parsed = /\((.*)\)$/.exec(message)?.[1] ?? message;
    // The parser's words for an answer that is not HTTP at all name protocols beside it.
    const reason = /^Expected HTTP\//.test(parsed)
      ? "it does not begin with an HTTP status line"
      : parsed;
    return `the receiver's answer is not HTTP/1.1 (${reason}). Check that the webhook URL points at a web server, with https:// if it speaks TLS.`;
  }
  // undici checks the status line with assertions: 101 Switching Protocols to a request that asked
  // for no upgrade, or a status below 100.
  if (code === "ERR_ASSERTION") {
    return "the receiver answered with a status no answer to a webhook can have (101 Switching Protocols, or a number below 100). Check the server at the webhook URL: it should answer 2xx.";
  }
  switch (code) {
    // undici's own limit on the wait for headers is the same, and may fire first.
    case "HERALD_ATTEMPT_TIMEOUT":
    case "UND_ERR_HEADERS_TIMEOUT":
      return `timed out: no response within ${timeoutMs} ms. A receiver should answer at once (2xx) and do slow work afterwards.`;
    case "UND_ERR_HEADERS_OVERFLOW":
      return "the receiver's answer has more header data than Herald reads (16 KB). Check the server at the webhook URL.";
    case "ECONNREFUSED":
      return `connection refused: nothing is listening at the webhook URL (${message})`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `the receiver's address cannot be reached from this machine: no network route to it (${code}). Check the host in the webhook URL, and that this machine's network and firewall let it through`;
    case "ETIMEDOUT":
      return `timed out: the receiver's address did not answer the connection (${code}). Check the host and port in the webhook URL, and that a firewall is not dropping the traffic`;
    case "EPIPE":
      return "the receiver closed the connection while the request was being sent. Check that the receiver is running and accepts bodies of this size";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `the webhook URL's host name could not be resolved (${message})`;
    case "UND_ERR_SOCKET":
      if (message === "bad response") {
        return "the receiver sent an interim '100 Continue' that Herald did not ask for (it never sends Expect), or an answer before the request. Make the receiver answer with its final status only.";
      }
      return closedBeforeAnswer("closed the connection", plainHttp);
    case "ECONNRESET":
      return closedBeforeAnswer("reset the connection (ECONNRESET)", plainHttp);
    case "UND_ERR_CONNECT_TIMEOUT":
      return `timed out: could not connect within ${timeoutMs} ms`;
    case "UND_ERR_BODY_TIMEOUT":
      return `timed out: the response body stopped for ${timeoutMs} ms`;
    case "UND_ERR_DESTROYED":
      return "Herald was stopping, and the shutdown grace (HERALD_SHUTDOWN_GRACE) ran out before the receiver answered. The delivery is sent again.";
    default:
      return (
        tlsProblem(code, message) ??
        `request failed: ${firstLine(message)}${code ? ` (${code})` : ""}`
      );
  }
}

/** What a TLS failure means for the webhook's URL, in words; undefined when it is not one. */
function tlsProblem(code: string | undefined, message: string): string | undefined {
  switch (code) {
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
      return `the receiver's TLS certificate is self-signed, so Herald cannot trust it (${code}). Give the receiver a certificate from a public certificate authority (Let's Encrypt, for one), or use http:// on a private network`;
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return `the receiver's TLS certificate is not signed by an authority Herald trusts, or the server does not send its intermediate certificates (${code}). Install the full certificate chain on the receiver`;
    case "CERT_HAS_EXPIRED":
      return `the receiver's TLS certificate has expired (${code}). Renew the certificate on the receiver`;
    case "CERT_NOT_YET_VALID":
      return `the receiver's TLS certificate is not valid yet (${code}). Check the receiver's certificate dates and this machine's clock`;
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `the receiver's TLS certificate is for another host name than the one in the webhook URL (${code}). Use the host name the certificate names, or fix the certificate`;
    case "ERR_SSL_WRONG_VERSION_NUMBER":
      return `the receiver does not speak TLS on this port (${code}). Use http:// instead of https://, or the port where the receiver serves HTTPS`;
  }
  if (
    code?.startsWith("ERR_SSL_") ||
    code?.startsWith("ERR_TLS_") ||
    /certificate/i.test(message)
  ) {
    const reason = /:SSL routines:[^:]*:([^:]+):/.exec(message)?.[1] ?? firstLine(message);
    return `the TLS connection to the receiver failed (${reason}${code ? `, ${code}` : ""}). Check the receiver's HTTPS setup, or use http:// if it does not serve HTTPS`;
  }
  return undefined;
}

/** Beyond this much, the rest of a response is not read: the connection is closed instead. */
const DRAIN_LIMIT = 64 * 1024;

/**
 * How many bytes of `body` are kept: RESPONSE_BODY_LIMIT, less the start of a UTF-8 character the
 * limit cuts through, which would otherwise end the kept text with a replacement character.
 */
function keptLength(body: Buffer): number {
  if (body.length <= RESPONSE_BODY_LIMIT) return body.length;
  let end = RESPONSE_BODY_LIMIT;
  // Bytes 10xxxxxx continue a character; back up over them to the byte that starts it.
  while (end > RESPONSE_BODY_LIMIT - 3 && ((body[end] as number) & 0xc0) === 0x80) end--;
  return end;
}

/** NUL cannot be stored as text in every database. */
function cleanText(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "") : text;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The attempt's own time limit ran out before the receiver's answer had begun. */
class AttemptTimeout extends Error {
  readonly code = "HERALD_ATTEMPT_TIMEOUT";
}

/**
 * Sends one request through undici's dispatcher with a handler of our own: the response is read
 * straight into the answer (kept headers, first 4 KB of the body) without the stream and promise
 * machinery of `request()`, which is most of a delivery's CPU. Up to 64 KB of body is read (and
 * dropped) so the connection can be reused; beyond that the request is aborted.
 *
 * The whole attempt has `timeoutMs`, however slowly the receiver sends, so it always ends within
 * its lease. Once the status line has come, the status decides the attempt: a body that then
 * stops, breaks off or runs out of time ends the answer, it does not fail the attempt (a receiver
 * that said 200 has the webhook, and sending it again would be a duplicate).
 */
function post(
  agent: Agent,
  options: { origin: string; path: string; headers: Record<string, string>; body: string },
  timeoutMs: number,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let abort: ((reason?: Error) => void) | undefined;
    let status = 0;
    const headers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let kept = 0;
    let seen = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      resolve({
        status,
        headers,
        body: cleanText(body.subarray(0, keptLength(body)).toString("utf8")),
      });
    };
    const fail = (error: Error) => {
      if (status !== 0) return finish();
      if (done) return;
      done = true;
      clearTimeout(deadline);
      reject(error);
    };
    const deadline = setTimeout(() => {
      fail(new AttemptTimeout(`no answer within ${timeoutMs} ms`));
      // Before the request has a connection there is nothing to abort yet: onConnect does it.
      abort?.(new Error("the attempt's time limit ran out"));
    }, timeoutMs);
    const handler: Dispatcher.DispatchHandler = {
      onConnect(abortRequest) {
        abort = abortRequest;
        if (done) abortRequest(new Error("the attempt's time limit ran out"));
      },
      onHeaders(statusCode, rawHeaders) {
        // 1xx answers are interim; the final one follows.
        if (statusCode < 200) return true;
        status = statusCode;
        for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
          const name = String(rawHeaders[i]).toLowerCase();
          if (!KEPT_HEADERS.has(name)) continue;
          const value = String(rawHeaders[i + 1]);
          headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
        }
        return true;
      },
      onData(chunk) {
        seen += chunk.length;
        if (kept < RESPONSE_BODY_LIMIT) {
          chunks.push(chunk);
          kept += chunk.length;
        }
        if (seen > DRAIN_LIMIT && abort) {
          // Enough has been read: what is kept is the answer, and the connection is dropped.
          finish();
          abort(new Error("response body over the drain limit"));
          return false;
        }
        return true;
      },
      onComplete() {
        finish();
      },
      onError(error) {
        fail(error);
      },
    };
    agent.dispatch(
      {
        origin: options.origin,
        path: options.path,
        method: "POST",
        headers: options.headers,
        body: options.body,
      },
      handler,
    );
  });
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
        const response = await post(
          agent,
          {
            origin: target.origin,
            path: target.path,
            headers: {
              "content-type": "application/json",
              "user-agent": userAgent,
              "x-webhook-event": delivery.eventType,
              "x-webhook-delivery": delivery.id,
              "x-webhook-attempt": String(delivery.attempts + 1),
              ...signature,
            },
            body: delivery.body,
          },
          timeoutMs,
        );
        return {
          startedAt,
          durationMs: Math.round(performance.now() - started),
          response,
          error: undefined,
          retryAfterMs: parseRetryAfter(response.headers["retry-after"], clock.now()),
        };
      } catch (error) {
        return {
          startedAt,
          durationMs: Math.round(performance.now() - started),
          response: undefined,
          error: describeError(error, timeoutMs, /^http:/i.test(delivery.url)),
          retryAfterMs: undefined,
          ...(blockedAddress(error) ? { refused: true } : {}),
          ...(cutOffByClose(error) ? { cutOff: true } : {}),
        };
      }
    },

    // Called once the shutdown grace is over: whatever is still in flight is cut off, rather than
    // waited for up to the delivery timeout.
    close: () => agent.destroy(),
  };
}
