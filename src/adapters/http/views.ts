/** How deliveries and events look in API answers: the contract's fields first, extra detail after. */
import type {
  AttemptRecord,
  DeliveryDetail,
  DeliverySummary,
  OutgoingEvent,
} from "../../domain/deliveries.js";

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A delivery in a webhook's history. */
export function viewDelivery(delivery: DeliverySummary) {
  return {
    id: delivery.id,
    webhookId: delivery.webhookId,
    event: delivery.event,
    eventId: delivery.eventId,
    payload: JSON.parse(delivery.body) as unknown,
    response:
      delivery.lastStatusCode === null
        ? null
        : { status: delivery.lastStatusCode, body: delivery.lastResponseBody ?? "" },
    attempts: delivery.attempts,
    status: delivery.status,
    timestamp: iso(delivery.createdAt),
    nextAttemptAt: iso(delivery.nextAttemptAt),
    lastAttemptAt: iso(delivery.lastAttemptAt),
    error: delivery.lastError,
    updatedAt: iso(delivery.updatedAt),
    heldBecause: delivery.heldBecause ?? null,
  };
}

function viewAttempt(attempt: AttemptRecord) {
  return {
    attempt: attempt.attempt,
    startedAt: iso(attempt.startedAt),
    durationMs: attempt.durationMs,
    statusCode: attempt.statusCode,
    error: attempt.error,
    response:
      attempt.statusCode === null
        ? null
        : {
            status: attempt.statusCode,
            headers: attempt.responseHeaders ?? {},
            body: attempt.responseBody ?? "",
          },
  };
}

/** A delivery with every attempt, oldest first. */
export function viewDeliveryDetail(delivery: DeliveryDetail) {
  return { ...viewDelivery(delivery), attemptLog: delivery.attemptLog.map(viewAttempt) };
}

/** An outgoing event, with the exact payload its deliveries send. */
export function viewEvent(event: OutgoingEvent) {
  return {
    id: event.id,
    event: event.type,
    payload: JSON.parse(event.body) as unknown,
    timestamp: iso(event.createdAt),
    // The incoming webhook it was routed from; null for a trigger.
    incomingEventId: event.incomingEventId ?? null,
    ...(event.incomingEventId
      ? { links: { incomingEvent: `/api/incoming-events/${event.incomingEventId}` } }
      : {}),
  };
}
