/**
 * Incoming webhooks: `/api/incoming-webhooks/:source`. Authenticated by the sender's signature,
 * not by the API key. Bodies are kept as raw bytes, whatever their type, so the signature is
 * checked on exactly what was sent; the use case reads them. The source, its secret, its rate and
 * size limits, the content type and encoding are checked before the body is read. Every refusal
 * (a 4xx answer) is logged as a warning, held to one line per source and reason per interval.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { IncomingService } from "../../../domain/incoming-service.js";
import { createLogThrottle } from "../../../domain/log-throttle.js";
import { LARGEST_BODY_BYTES } from "../../../domain/sources.js";
import { counted } from "../../../domain/text.js";
import { encodedBodyRefusal } from "../../utf8-text.js";

/** The largest body any source may accept; each source's own limit is checked first. */
const INCOMING_BODY_CEILING = LARGEST_BODY_BYTES;

/** Anyone may send refused webhooks at will: one line per source and reason per interval. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Logs the refusal `reply` carries, at most once per interval for each source and reason (the
 * error code), with how many there were. Refusals for sources that do not exist share one line,
 * so names made up by the thousand cannot grow what is kept.
 */
function refusalLogger(clock: { now(): number }) {
  const throttle = createLogThrottle(REFUSAL_LOG_INTERVAL_MS, () => clock.now());
  const every = `${REFUSAL_LOG_INTERVAL_MS / 1000} s`;
  return (
    request: FastifyRequest,
    reply: FastifyReply,
    source: string,
    answer: { code: string; message: string },
  ) => {
    const unknown = answer.code === "unknown_service";
    const count = throttle.due(unknown ? "unknown source" : `${source} ${answer.code}`);
    if (count === undefined) return;
    const what = count === 1 ? "an incoming webhook" : counted(count, "incoming webhook");
    const to = unknown
      ? `for a source that does not exist (the latest for '${source}', from ${request.ip})`
      : `for '${source}' (the latest from ${request.ip})`;
    const held = unknown ? "Refusals for unknown sources" : "Refusals for the same reason";
    request.log.warn(
      {
        source,
        reason: answer.code,
        status: reply.statusCode,
        from: request.ip,
        refused: count,
      },
      `Refused ${what} ${to} with ${reply.statusCode}: ${answer.message} ${held} are logged at most every ${every}.`,
    );
  };
}

/** Registers the receiving routes on `app` (mounted at /api/incoming-webhooks). */
export function registerIncomingRoutes(
  app: FastifyInstance,
  service: IncomingService,
  clock: { now(): number },
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    "*",
    { parseAs: "buffer", bodyLimit: INCOMING_BODY_CEILING },
    (_request, body, done) => done(null, body),
  );

  const logRefusal = refusalLogger(clock);
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
      logRefusal(request, reply, source, answer);
    }
    done(null, payload);
  });

  app.get("/health", async () => ({
    success: true,
    message: "Incoming webhook endpoint is healthy",
    timestamp: new Date(clock.now()).toISOString(),
  }));

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
        const length = request.headers["content-length"];
        try {
          const pending = service.admit(
            source,
            length === undefined ? undefined : Number(length),
            request.headers["content-type"],
          );
          // A compressed body is refused once the source is known, so that it is logged as one.
          const encoded = () => encodedBodyRefusal(request.headers["content-encoding"]);
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
