import type { Clock } from "./clock.js";
import {
  type DeliveryDetail,
  type DeliveryPage,
  type DeliveryPageOptions,
  type OutgoingEvent,
  withHoldReason,
} from "./deliveries.js";
import { HeraldError } from "./errors.js";
import { isKnownEventType } from "./event-types.js";
import { newId, newSecret } from "./ids.js";
import { undeliverableNumber } from "./json-numbers.js";
import type { Store, WakeSignal, WebhookPage } from "./ports.js";
import {
  checkEventTypes,
  checkSecret,
  checkWebhookName,
  checkWebhookUrl,
  MASKED_SECRET,
  type Webhook,
  type WebhookInput,
  type WebhookPatch,
  webhookReceives,
} from "./webhooks.js";

/** The result of triggering an event. */
export interface TriggerResult {
  eventId: string;
  /** How many deliveries were queued: one per active webhook subscribed to the event type. */
  deliveries: number;
}

/** Everything the API does with outgoing webhooks. */
export interface WebhookService {
  register(input: WebhookInput): Promise<Webhook>;
  get(id: string): Promise<Webhook>;
  list(): Promise<Webhook[]>;
  page(options: { limit: number; cursor?: string }): Promise<WebhookPage>;
  update(id: string, patch: WebhookPatch): Promise<Webhook>;
  remove(id: string): Promise<void>;
  trigger(eventType: string, data: unknown): Promise<TriggerResult>;
  listDeliveries(webhookId: string, options: DeliveryPageOptions): Promise<DeliveryPage>;
  getDelivery(webhookId: string, deliveryId: string): Promise<DeliveryDetail>;
  /** Sends a delivery that is done (failed or succeeded) once more, now; returns it, pending. */
  retryDelivery(webhookId: string, deliveryId: string): Promise<DeliveryDetail>;
  /** An outgoing event, made by a trigger or by routing an incoming webhook. */
  getEvent(id: string): Promise<OutgoingEvent>;
}

function webhookNotFound(id: string): HeraldError {
  return new HeraldError(
    "webhook_not_found",
    `Webhook not found: no webhook has the id '${id}'. GET /api/webhooks lists the registered webhooks.`,
  );
}

function deliveryNotFound(webhookId: string, deliveryId: string): HeraldError {
  return new HeraldError(
    "delivery_not_found",
    `Delivery not found: webhook '${webhookId}' has no delivery '${deliveryId}'. GET /api/webhooks/${webhookId}/deliveries lists its deliveries.`,
  );
}

/** Builds the outgoing webhook use cases on a store. */
export function createWebhookService(deps: {
  store: Store;
  clock: Clock;
  wake: WakeSignal;
}): WebhookService {
  const { store, clock, wake } = deps;

  async function get(id: string): Promise<Webhook> {
    const webhook = await store.getWebhook(id);
    if (!webhook) throw webhookNotFound(id);
    return webhook;
  }

  async function deliveryOf(webhook: Webhook, deliveryId: string): Promise<DeliveryDetail> {
    const delivery = await store.getDelivery(webhook.id, deliveryId);
    if (!delivery) throw deliveryNotFound(webhook.id, deliveryId);
    return withHoldReason(delivery, webhook);
  }

  return {
    async register(input) {
      const now = clock.now();
      const webhook: Webhook = {
        id: newId("wh", now),
        name: checkWebhookName(input.name),
        url: checkWebhookUrl(input.url),
        events: checkEventTypes(input.events),
        secret: input.secret !== undefined ? checkSecret(input.secret) : newSecret(),
        active: input.active ?? true,
        createdAt: now,
        updatedAt: now,
      };
      await store.insertWebhook(webhook);
      return webhook;
    },

    get,

    list: () => store.listWebhooks(),

    page: (options) => store.pageWebhooks(options),

    async update(id, patch) {
      if (patch.secret !== undefined && patch.secret !== MASKED_SECRET) {
        throw new HeraldError(
          "validation_failed",
          `secret cannot be changed once a webhook is registered; leave it out or send it as "${MASKED_SECRET}". For a new secret, register a new webhook and delete this one.`,
          "secret",
        );
      }
      // An empty body, or one of only unknown or read-only fields (most likely a misspelt one).
      if (
        patch.name === undefined &&
        patch.url === undefined &&
        patch.events === undefined &&
        patch.active === undefined
      ) {
        throw new HeraldError(
          "validation_failed",
          "The request body has no field that can be changed. Send at least one of name, url, events or active.",
        );
      }
      const current = await get(id);
      const next: Webhook = {
        ...current,
        name: patch.name !== undefined ? checkWebhookName(patch.name) : current.name,
        url: patch.url !== undefined ? checkWebhookUrl(patch.url) : current.url,
        events: patch.events !== undefined ? checkEventTypes(patch.events) : current.events,
        active: patch.active ?? current.active,
        updatedAt: Math.max(clock.now(), current.updatedAt),
      };
      if (!(await store.updateWebhook(next))) throw webhookNotFound(id);
      // What a worker holds for the webhook was claimed as it was: once its URL changed or it was
      // made inactive, that goes back to be claimed as it now is (at once, by the new URL; once
      // active again, when paused). Reactivating it may make waiting deliveries due.
      if (next.url !== current.url || next.active !== current.active) wake.notify(id);
      return next;
    },

    async remove(id) {
      if (!(await store.deleteWebhook(id))) throw webhookNotFound(id);
      // Its deliveries are deleted: a worker drops what it holds for it.
      wake.notify(id);
    },

    async trigger(eventType, data) {
      if (!isKnownEventType(eventType)) {
        throw new HeraldError(
          "unknown_event_type",
          `event '${eventType}' is not a known event type. GET /api/webhooks/events/types lists the valid ones.`,
          "event",
        );
      }
      const now = clock.now();
      const eventId = newId("evt", now);
      const body = JSON.stringify({
        event: eventType,
        timestamp: new Date(now).toISOString(),
        data,
      });
      const problem = undeliverableNumber(data, body);
      if (problem) throw new HeraldError("validation_failed", problem.message, problem.path);
      const deliveries = await store.enqueueEvent(
        { id: eventId, type: eventType, body, createdAt: now },
        (active) => active.filter((webhook) => webhookReceives(webhook, eventType)),
        () => newId("del", now),
      );
      return { eventId, deliveries };
    },

    async listDeliveries(webhookId, options) {
      const webhook = await get(webhookId);
      const page = await store.listDeliveries(webhookId, options);
      return {
        ...page,
        deliveries: page.deliveries.map((delivery) => withHoldReason(delivery, webhook)),
      };
    },

    async getDelivery(webhookId, deliveryId) {
      return deliveryOf(await get(webhookId), deliveryId);
    },

    async retryDelivery(webhookId, deliveryId) {
      const webhook = await get(webhookId);
      const now = clock.now();
      const outcome = await store.requeueDelivery(webhookId, deliveryId, now);
      if (outcome === "not_found") throw deliveryNotFound(webhookId, deliveryId);
      // A pending delivery waiting for its next attempt is sent now instead (its attempts go on
      // counting); one already due or being sent is left to its worker.
      if (outcome === "pending") {
        if (!webhook.active) {
          throw new HeraldError(
            "delivery_pending",
            `Delivery '${deliveryId}' is still pending, held because webhook '${webhookId}' is inactive: it is sent once the webhook is active again (PUT /api/webhooks/${webhookId} with "active": true), so there is nothing to retry.`,
          );
        }
        if (!(await store.bringDeliveryForward(webhookId, deliveryId, now))) {
          throw new HeraldError(
            "delivery_pending",
            `Delivery '${deliveryId}' is already due or being sent right now, so there is nothing to bring forward. GET /api/webhooks/${webhookId}/deliveries/${deliveryId} shows the attempt once it is made.`,
          );
        }
      }
      wake.notify();
      return deliveryOf(webhook, deliveryId);
    },

    async getEvent(id) {
      const event = await store.getEvent(id);
      if (!event) {
        throw new HeraldError(
          "event_not_found",
          `Event not found: no outgoing event has the id '${id}'. Event ids are in trigger answers, in delivery histories (eventId) and in incoming events (outgoingEventId). A webhook Herald received has its own id: read it at GET /api/incoming-events/${id}.`,
        );
      }
      return event;
    },
  };
}
