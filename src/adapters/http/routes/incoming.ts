/**
 * Incoming webhooks: `/api/incoming-webhooks/:source`. Authenticated by the sender's signature,
 * not by the API key. Bodies are kept as raw bytes, whatever their type, so the signature is
 * checked on exactly what was sent; the use case reads them. The source, its secret, its rate and
 * size limits, the content type and encoding are checked before the body is read. Every refusal
 * (a 4xx answer) is logged as a warning, held to one line per source and reason per interval.
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { IncomingService } from "../../../domain/incoming-service.js";
import { createLogThrottle } from "../../../domain/log-throttle.js";
import { LARGEST_BODY_BYTES } from "../../../domain/sources.js";
import { counted, firstLine } from "../../../domain/text.js";
import { encodedBodyRefusal } from "../../utf8-text.js";
import { sendUnavailable } from "../error-mapper.js";

/** The largest body any source may accept; each source's own limit is checked first. */
const INCOMING_BODY_CEILING = LARGEST_BODY_BYTES;

/** Anyone may send refused webhooks at will: one line per source and reason per interval. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;
/** How often refusals held back are looked for, so that the end of a burst is logged too. */
const HELD_REFUSALS_CHECK_MS = 1_000;

/** A refused incoming webhook, as its log line tells it. */
interface Refusal {
  source: string;
  code: string;
  message: string;
  status: number;
  from: string;
}

/**
 * Logs refused incoming webhooks, at most once per interval for each source and reason (the error
 * code), with how many there were; what a burst held back is logged once its interval is over.
 * Refusals for sources that do not exist share one line, so names made up by the thousand cannot
 * grow what is kept.
 */
function refusalLogger(clock: { now(): number }, log: FastifyBaseLogger) {
  const throttle = createLogThrottle(REFUSAL_LOG_INTERVAL_MS, () => clock.now());
  /** The latest refusal under each key, which a line for what was held back tells of. */
  const latest = new Map<string, Refusal>();
  const every = `${REFUSAL_LOG_INTERVAL_MS / 1000} s`;

  function write(refusal: Refusal, count: number): void {
    const unknown = refusal.code === "unknown_service";
    const what = count === 1 ? "an incoming webhook" : counted(count, "incoming webhook");
    const to = unknown
      ? `for a source that does not exist (the latest for '${refusal.source}', from ${refusal.from})`
      : `for '${refusal.source}' (the latest from ${refusal.from})`;
    const held = unknown ? "Refusals for unknown sources" : "Refusals for the same reason";
    log.warn(
      {
        source: refusal.source,
        reason: refusal.code,
        status: refusal.status,
        from: refusal.from,
        refused: count,
      },
      `Refused ${what} ${to} with ${refusal.status}: ${refusal.message} ${held} are logged at most every ${every}.`,
    );
  }

  const check = setInterval(() => {
    for (const { key, count } of throttle.held()) {
      const refusal = latest.get(key);
      if (refusal) write(refusal, count);
    }
  }, HELD_REFUSALS_CHECK_MS);
  check.unref();

  return {
    refused(refusal: Refusal): void {
      const key =
        refusal.code === "unknown_service" ? "unknown source" : `${refusal.source} ${refusal.code}`;
      if (latest.size >= 1000 && !latest.has(key)) latest.clear();
      latest.set(key, refusal);
      const count = throttle.due(key);
      if (count !== undefined) write(refusal, count);
    },
    close(): void {
      clearInterval(check);
    },
  };
}

/** Registers the receiving routes on `app` (mounted at /api/incoming-webhooks). */
export function registerIncomingRoutes(
  app: FastifyInstance,
  service: IncomingService,
  clock: { now(): number },
  /** Resolves when the database answers (within a bound), rejects when it does not. */
  databaseReady: () => Promise<void>,
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    "*",
    { parseAs: "buffer", bodyLimit: INCOMING_BODY_CEILING },
    (_request, body, done) => done(null, body),
  );

  const refusals = refusalLogger(clock, app.log);
  app.addHook("onClose", (_app, done) => {
    refusals.close();
    done();
  });
  app.addHook("onSend", (request, reply, payload, done) => {
    // Error answers are the error format's JSON. A path no route takes, or one the router could
    // not read, is no refused webhook: it names no source.
    const { service: source } = (request.params ?? {}) as { service?: string };
    if (
      reply.statusCode >= 400 &&
      reply.statusCode < 500 &&
      !request.is404 &&
      source !== undefined &&
      typeof payload === "string"
    ) {
      let answer: { code: string; message: string };
      try {
        answer = JSON.parse(payload);
      } catch {
        answer = { code: "unknown", message: "(the answer was not in the error format)" };
      }
      refusals.refused({
        source,
        code: answer.code,
        message: answer.message,
        status: reply.statusCode,
        // Gone with its connection, for a sender that left before its body had come.
        from: request.ip ?? "a sender that has disconnected",
      });
    }
    done(null, payload);
  });

  // Healthy means webhooks can be stored: a sender's webhook is acknowledged only once it is.
  app.get("/health", async (_request, reply) => {
    try {
      await databaseReady();
    } catch (error) {
      return sendUnavailable(
        reply,
        `Incoming webhooks cannot be stored right now: Herald's database does not answer (${firstLine((error as Error).message)}). Senders are answered 503 and asked to send again later. Check that the database is running and reachable; this endpoint says healthy again as soon as it answers.`,
      );
    }
    return {
      success: true,
      message: "Incoming webhook endpoint is healthy",
      timestamp: new Date(clock.now()).toISOString(),
    };
  });

  app.post<{ Params: { service: string } }>(
    "/:service",
    {
      bodyLimit: INCOMING_BODY_CEILING,
      schema: {
        params: {
          type: "object",
          required: ["service"],
          properties: { service: { type: "string" } },
        },
      },
      onRequest: (request, _reply, done) => {
        const { service: source } = request.params as { service: string };
        const { headers } = request;
        // Without a length or a chunked body, an HTTP/1.1 request has no body at all.
        const length =
          headers["content-length"] !== undefined
            ? Number(headers["content-length"])
            : headers["transfer-encoding"] === undefined
              ? 0
              : undefined;
        try {
          const pending = service.admit(source, length, headers["content-type"]);
          // A compressed body is refused once the source is known, so that it is logged as one;
          // an empty one has nothing compressed in it.
          const encoded = () => (length === 0 ? undefined : encodedBodyRefusal(headers));
          if (pending) pending.then(() => done(encoded()), done);
          else done(encoded());
        } catch (error) {
          done(error as Error);
        }
      },
    },
    async (request) => {
      const result = await service.receive(request.params.service, {
        rawBody: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
        headers: request.headers,
        contentType: request.headers["content-type"],
      });
      return {
        success: true,
        message: "Webhook received successfully",
        eventId: result.eventId,
        duplicate: result.duplicate,
        status: result.status,
        verified: result.verified,
      };
    },
  );
}
