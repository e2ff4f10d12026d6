/**
 * Incoming webhooks: `/api/incoming-webhooks/:source`. Authenticated by the sender's signature,
 * not by the API key. Bodies are kept as raw bytes, whatever their type, so the signature is
 * checked on exactly what was sent; the use case reads them. The source, its secret, its rate and
 * size limits and the content type are checked before the body is read.
 */
import type { FastifyInstance } from "fastify";
import type { IncomingService } from "../../../domain/incoming-service.js";
import { LARGEST_BODY_BYTES } from "../../../domain/sources.js";

/** The largest body any source may accept; each source's own limit is checked first. */
const INCOMING_BODY_CEILING = LARGEST_BODY_BYTES;

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
          if (pending) pending.then(() => done(), done);
          else done();
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
        from: request.ip,
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
