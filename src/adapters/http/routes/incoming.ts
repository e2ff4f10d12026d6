/**
 * Incoming webhooks: `/api/incoming-webhooks/:service`. Authenticated by the sender's signature,
 * not by the API key. The body is kept as raw bytes so the signature is checked on exactly what
 * was sent; JSON is parsed by the use case.
 */
import type { FastifyInstance } from "fastify";
import type { IncomingService } from "../../../domain/incoming-service.js";

/** Registers the incoming routes on `app` (mounted at /api/incoming-webhooks). */
export function registerIncomingRoutes(
  app: FastifyInstance,
  service: IncomingService,
  clock: { now(): number },
): void {
  app.removeAllContentTypeParsers();
  const keepRaw = (
    _request: unknown,
    body: Buffer | string,
    done: (err: null, body: Buffer | string) => void,
  ) => done(null, body);
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, keepRaw);
  app.addContentTypeParser(/^application\/[\w.+-]+\+json$/, { parseAs: "buffer" }, keepRaw);

  app.get("/health", async () => ({
    success: true,
    message: "Incoming webhook endpoint is healthy",
    timestamp: new Date(clock.now()).toISOString(),
  }));

  app.post<{ Params: { service: string } }>(
    "/:service",
    {
      schema: {
        params: {
          type: "object",
          required: ["service"],
          properties: { service: { type: "string", maxLength: 100 } },
        },
      },
    },
    async (request) => {
      const rawBody = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const result = await service.receive(request.params.service, {
        rawBody,
        headers: request.headers,
      });
      return {
        success: true,
        message: "Webhook received successfully",
        eventId: result.eventId,
        duplicate: result.duplicate,
      };
    },
  );
}
