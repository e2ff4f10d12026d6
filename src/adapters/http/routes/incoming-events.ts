/** Inspecting and replaying received webhooks: `/api/incoming-events…`, behind the API key. */
import type { FastifyInstance } from "fastify";
import { HeraldError } from "../../../domain/errors.js";
import type {
  IncomingEvent,
  IncomingEventDetail,
  IncomingStatus,
} from "../../../domain/incoming.js";
import type { IncomingService } from "../../../domain/incoming-service.js";

const iso = (ms: number) => new Date(ms).toISOString();

function viewSummary(event: IncomingEvent) {
  return {
    id: event.id,
    source: event.service,
    event: event.eventName,
    status: event.status,
    verified: event.verified,
    verifiedBy: event.verifiedBy,
    dedupeKey: event.dedupeKey,
    contentType: event.contentType,
    size: event.rawBody.length,
    outgoingEventId: event.outgoingEventId,
    routeError: event.routeError,
    receivedAt: iso(event.receivedAt),
  };
}

function viewDetail(event: IncomingEventDetail) {
  const text = event.rawBody.toString("utf8");
  const isText = Buffer.from(text, "utf8").equals(event.rawBody);
  return {
    ...viewSummary(event),
    headers: event.headers,
    body: isText ? text : event.rawBody.toString("base64"),
    bodyEncoding: isText ? "utf8" : "base64",
    // Newest first: the event it was routed to when it came, and one more per replay that routed it.
    routedEvents: event.routedEvents.map((routed) => ({
      id: routed.id,
      event: routed.type,
      timestamp: iso(routed.createdAt),
      link: `/api/events/${routed.id}`,
    })),
    links: {
      self: `/api/incoming-events/${event.id}`,
      replay: `/api/incoming-events/${event.id}/replay`,
      source: `/api/sources/${event.service}`,
      ...(event.outgoingEventId ? { outgoingEvent: `/api/events/${event.outgoingEventId}` } : {}),
    },
  };
}

function readTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  // Ten or eleven digits are the Unix seconds of a recent time, but early 1970 in milliseconds.
  if (/^\d+$/.test(value) && ms >= 1e9 && ms < 1e11) {
    throw new HeraldError(
      "validation_failed",
      `${field}=${value} reads as ${new Date(ms).toISOString()} in Unix milliseconds, which is what ${field} takes. If it is Unix seconds, send ${value}000, or an ISO 8601 time such as 2025-12-05T07:00:00Z.`,
      field,
    );
  }
  // Beyond ±8.64e15 ms there is no date, in JavaScript or in the database.
  if (Number.isNaN(ms) || Math.abs(ms) > 8.64e15) {
    throw new HeraldError(
      "validation_failed",
      `${field} must be an ISO 8601 time such as 2025-12-05T07:00:00Z, or Unix milliseconds.`,
      field,
    );
  }
  return ms;
}

const STATUSES: IncomingStatus[] = ["received", "routed", "unrouted", "failed"];
const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string" } },
} as const;

/** Registers the inspection routes on `app` (mounted at /api/incoming-events). */
export function registerIncomingEventRoutes(app: FastifyInstance, service: IncomingService): void {
  app.get<{
    Querystring: {
      source?: string;
      status?: IncomingStatus;
      since?: string;
      until?: string;
      limit: number;
      cursor?: string;
    };
  }>(
    "/",
    {
      schema: {
        querystring: {
          type: "object",
          properties: {
            source: { type: "string", maxLength: 100 },
            status: { type: "string", enum: STATUSES },
            since: { type: "string", maxLength: 40 },
            until: { type: "string", maxLength: 40 },
            limit: { type: "integer", minimum: 1, maximum: 500, default: 50 },
            cursor: { type: "string", maxLength: 200 },
          },
        },
      },
    },
    async (request) => {
      const { source, status, since, until, limit, cursor } = request.query;
      const sinceMs = readTime(since, "since");
      const untilMs = readTime(until, "until");
      const page = await service.list({
        limit,
        ...(source === undefined ? {} : { source }),
        ...(status === undefined ? {} : { status }),
        ...(sinceMs === undefined ? {} : { since: sinceMs }),
        ...(untilMs === undefined ? {} : { until: untilMs }),
        ...(cursor === undefined ? {} : { cursor }),
      });
      return {
        success: true,
        count: page.events.length,
        events: page.events.map(viewSummary),
        nextCursor: page.nextCursor ?? null,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/:id",
    { schema: { params: idParams } },
    async (request) => ({
      success: true,
      event: viewDetail(await service.get(request.params.id)),
    }),
  );

  app.post<{ Params: { id: string } }>(
    "/:id/replay",
    { schema: { params: idParams } },
    async (request) => {
      const { event, deliveries } = await service.replay(request.params.id);
      return {
        success: true,
        message:
          event.status === "routed"
            ? `Incoming webhook routed again as event ${event.outgoingEventId}; ${deliveries} deliveries queued.`
            : event.status === "failed"
              ? `Routing failed: ${event.routeError?.replace(/\.$/, "")}.`
              : "No routing rule of the source matched; nothing was sent.",
        // The event this replay made, beside the incoming webhook's own record of it.
        outgoingEventId: event.status === "routed" ? event.outgoingEventId : null,
        event: viewDetail(event),
        deliveries,
      };
    },
  );
}
