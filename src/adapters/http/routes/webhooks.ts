/** The outgoing webhook API: `/api/webhooks…`, every route behind the API key. */
import type { FastifyInstance } from "fastify";
import type { DeliveryStatus } from "../../../domain/deliveries.js";
import { HeraldError } from "../../../domain/errors.js";
import { EVENT_TYPES } from "../../../domain/event-types.js";
import type { WebhookService } from "../../../domain/webhook-service.js";
import { viewWebhook, type WebhookInput, type WebhookPatch } from "../../../domain/webhooks.js";
import { type BodyFields, ignoredFieldWarnings, withWarnings } from "../ignored-fields.js";
import { viewDelivery, viewDeliveryDetail, viewEvent } from "../views.js";

const name = { type: "string", minLength: 1, maxLength: 200 } as const;
const url = { type: "string", minLength: 1, maxLength: 2048 } as const;
const events = {
  type: "array",
  minItems: 1,
  maxItems: 100,
  items: { type: "string", minLength: 1, maxLength: 200 },
} as const;
const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string" } },
} as const;

const createBody = {
  type: "object",
  required: ["name", "url", "events"],
  properties: {
    name,
    url,
    events,
    secret: { type: "string", minLength: 1, maxLength: 512 },
    active: { type: "boolean" },
  },
} as const;

const updateBody = {
  type: "object",
  properties: { name, url, events, active: { type: "boolean" } },
} as const;

const triggerBody = {
  type: "object",
  required: ["event"],
  properties: {
    event: { type: "string", minLength: 1, maxLength: 200 },
    data: { type: "object" },
  },
} as const;

const WEBHOOK_FIELDS: BodyFields = {
  what: "a webhook",
  reads: ["name", "url", "events", "secret", "active"],
  echoed: ["id", "createdAt", "updatedAt"],
};

const TRIGGER_FIELDS: BodyFields = {
  what: "a trigger",
  reads: ["event", "data"],
  advice: Object.fromEntries(
    ["payload", "body", "record", "params"].map((name) => [
      name,
      `the event's data goes in "data".`,
    ]),
  ),
};

/** What a trigger's answer warns of: fields it did not read, and so data it did not send. */
function triggerWarnings(body: { data?: unknown }): string[] {
  const warnings = ignoredFieldWarnings(body, TRIGGER_FIELDS);
  if (warnings.length > 0 && body.data === undefined) {
    warnings.push('No "data" was given, so the event was sent with "data": {}.');
  }
  return warnings;
}

/** Items on a page when a list is paged without a limit. */
const DEFAULT_PAGE = 50;

const deliveriesQuery = {
  type: "object",
  properties: {
    limit: { type: "integer", minimum: 1, maximum: 500, default: DEFAULT_PAGE },
    cursor: { type: "string", maxLength: 200 },
    status: { type: "string", enum: ["pending", "success", "failed"] },
  },
} as const;

const webhooksQuery = {
  type: "object",
  properties: {
    limit: { type: "integer", minimum: 1, maximum: 500 },
    cursor: { type: "string", maxLength: 300 },
  },
} as const;

/** Registers the outgoing webhook routes on `app` (mounted at /api/webhooks). */
export function registerWebhookRoutes(app: FastifyInstance, service: WebhookService): void {
  // Every webhook at once, as the seed lists them, unless a page is asked for with limit or cursor.
  app.get<{ Querystring: { limit?: number; cursor?: string } }>(
    "/",
    { schema: { querystring: webhooksQuery } },
    async (request) => {
      const { limit, cursor } = request.query;
      const { webhooks, nextCursor } =
        limit === undefined && cursor === undefined
          ? { webhooks: await service.list(), nextCursor: undefined }
          : await service.page({
              limit: limit ?? DEFAULT_PAGE,
              ...(cursor === undefined ? {} : { cursor }),
            });
      return {
        success: true,
        count: webhooks.length,
        webhooks: webhooks.map((w) => viewWebhook(w)),
        nextCursor: nextCursor ?? null,
      };
    },
  );

  app.get("/events/types", async () => ({
    success: true,
    count: EVENT_TYPES.length,
    events: EVENT_TYPES,
  }));

  app.post<{ Body: { event: string; data?: Record<string, unknown> } }>(
    "/trigger",
    { schema: { body: triggerBody } },
    async (request) => {
      const result = await service.trigger(request.body.event, request.body.data ?? {});
      return withWarnings(
        {
          success: true,
          message: "Webhook event triggered successfully",
          eventId: result.eventId,
          deliveries: result.deliveries,
        },
        triggerWarnings(request.body),
      );
    },
  );

  app.post<{ Body: WebhookInput }>(
    "/",
    { schema: { body: createBody } },
    async (request, reply) => {
      const webhook = await service.register(request.body);
      return reply.status(201).send(
        withWarnings(
          {
            success: true,
            message: "Webhook registered successfully",
            webhook: viewWebhook(webhook, true),
          },
          ignoredFieldWarnings(request.body, { ...WEBHOOK_FIELDS, echoed: [] }),
        ),
      );
    },
  );

  app.get<{ Params: { id: string } }>(
    "/:id",
    { schema: { params: idParams } },
    async (request) => ({
      success: true,
      webhook: viewWebhook(await service.get(request.params.id)),
    }),
  );

  app.put<{ Params: { id: string }; Body: WebhookPatch }>(
    "/:id",
    { schema: { params: idParams, body: updateBody } },
    async (request) => {
      const warnings = ignoredFieldWarnings(request.body, WEBHOOK_FIELDS);
      const { name, url, events, active } = request.body;
      if (warnings.length > 0 && [name, url, events, active].every((f) => f === undefined)) {
        throw new HeraldError(
          "validation_failed",
          `The request body has no field that can be changed (name, url, events or active). ${warnings.join(" ")}`,
        );
      }
      return withWarnings(
        {
          success: true,
          message: "Webhook updated successfully",
          webhook: viewWebhook(await service.update(request.params.id, request.body)),
        },
        warnings,
      );
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/:id",
    { schema: { params: idParams } },
    async (request) => {
      await service.remove(request.params.id);
      return { success: true, message: "Webhook deleted successfully" };
    },
  );

  app.get<{
    Params: { id: string };
    Querystring: { limit: number; cursor?: string; status?: DeliveryStatus };
  }>(
    "/:id/deliveries",
    { schema: { params: idParams, querystring: deliveriesQuery } },
    async (request) => {
      const { limit, cursor, status } = request.query;
      const page = await service.listDeliveries(request.params.id, {
        limit,
        ...(cursor === undefined ? {} : { cursor }),
        ...(status === undefined ? {} : { status }),
      });
      return {
        success: true,
        count: page.deliveries.length,
        deliveries: page.deliveries.map(viewDelivery),
        nextCursor: page.nextCursor ?? null,
      };
    },
  );

  app.get<{ Params: DeliveryParams }>(
    "/:id/deliveries/:deliveryId",
    { schema: { params: deliveryParams } },
    async (request) => ({
      success: true,
      delivery: viewDeliveryDetail(
        await service.getDelivery(request.params.id, request.params.deliveryId),
      ),
    }),
  );

  app.post<{ Params: DeliveryParams }>(
    "/:id/deliveries/:deliveryId/retry",
    { schema: { params: deliveryParams } },
    async (request) => {
      const delivery = await service.retryDelivery(request.params.id, request.params.deliveryId);
      return {
        success: true,
        message: delivery.heldBecause
          ? "Delivery queued to be sent again once its webhook is active (see heldBecause)"
          : "Delivery queued to be sent again",
        delivery: viewDeliveryDetail(delivery),
      };
    },
  );
}

interface DeliveryParams {
  id: string;
  deliveryId: string;
}

const deliveryParams = {
  type: "object",
  required: ["id", "deliveryId"],
  properties: { id: { type: "string" }, deliveryId: { type: "string" } },
} as const;

/** Registers the outgoing event routes on `app` (mounted at /api/events). */
export function registerEventRoutes(app: FastifyInstance, service: WebhookService): void {
  app.get<{ Params: { id: string } }>(
    "/:id",
    { schema: { params: idParams } },
    async (request) => ({
      success: true,
      event: viewEvent(await service.getEvent(request.params.id)),
    }),
  );
}
