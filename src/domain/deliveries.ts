/** Where a delivery stands: waiting for an attempt, delivered, or given up on. */
export type DeliveryStatus = "pending" | "success" | "failed";

/** An event accepted for delivery: the exact body that every attempt sends and signs. */
export interface OutgoingEvent {
  id: string;
  type: string;
  /** The JSON body `{"event","timestamp","data"}`, serialised once so every attempt signs the same bytes. */
  body: string;
  createdAt: number;
  /** The incoming webhook it was routed from; absent for a trigger. */
  incomingEventId?: string;
}

/** One delivery picked up by a worker, with everything needed to attempt it. */
export interface ClaimedDelivery {
  id: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  url: string;
  secret: string;
  body: string;
  /** Attempts made before this one. */
  attempts: number;
  createdAt: number;
}

/** A delivery just created for `webhook`, as a worker holds it before its first attempt. */
export function freshDelivery(
  id: string,
  webhook: { id: string; url: string; secret: string },
  event: OutgoingEvent,
): ClaimedDelivery {
  return {
    id,
    webhookId: webhook.id,
    eventId: event.id,
    eventType: event.type,
    url: webhook.url,
    secret: webhook.secret,
    body: event.body,
    attempts: 0,
    createdAt: event.createdAt,
  };
}

/** What came back from the receiver, or why nothing did. */
export interface AttemptResponse {
  status: number;
  /** Response headers worth keeping (content type, retry-after, request ids). */
  headers: Record<string, string>;
  /** The body, cut to 4 KB. */
  body: string;
}

/** The result of one attempt, as the sender reports it. */
export interface AttemptResult {
  startedAt: number;
  durationMs: number;
  response: AttemptResponse | undefined;
  /** Why there is no usable response (timeout, refused connection, blocked address), in plain words. */
  error: string | undefined;
  /** Seconds the receiver asked us to wait (Retry-After), when it asked. */
  retryAfterMs: number | undefined;
  /** True when trying again cannot help: the target's address is one deliveries may not reach. */
  refused?: boolean;
  /**
   * True when Herald's own stop ended the attempt before the receiver had answered: it says nothing
   * of the receiver, so it is not counted; the delivery is sent again.
   */
  cutOff?: boolean;
}

/** One attempt, as stored and shown in the history. */
export interface AttemptRecord {
  deliveryId: string;
  attempt: number;
  startedAt: number;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseHeaders: Record<string, string> | null;
  responseBody: string | null;
}

/** The change an attempt makes to its delivery, written together with the attempt. */
export interface DeliveryUpdate {
  deliveryId: string;
  status: DeliveryStatus;
  attempts: number;
  /** When the next attempt is due, for a delivery still pending. */
  nextAttemptAt: number | null;
  attempt: AttemptRecord;
}

/** A delivery as listed in a webhook's history. */
export interface DeliverySummary {
  id: string;
  webhookId: string;
  eventId: string;
  event: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: number | null;
  lastStatusCode: number | null;
  lastResponseBody: string | null;
  lastError: string | null;
  lastAttemptAt: number | null;
  createdAt: number;
  updatedAt: number;
  /** Why a pending delivery is not being sent, in words; absent when nothing holds it. */
  heldBecause?: string;
}

/** A delivery with each of its attempts, oldest first. */
export interface DeliveryDetail extends DeliverySummary {
  attemptLog: AttemptRecord[];
}

/** Which page of a webhook's delivery history to read. */
export interface DeliveryPageOptions {
  limit: number;
  /** Where the previous page ended; absent for the first page. */
  cursor?: string;
  /** Only deliveries in this status; all of them when absent. */
  status?: DeliveryStatus;
}

/** One page of a webhook's delivery history, newest first. */
export interface DeliveryPage {
  deliveries: DeliverySummary[];
  /** Pass back as `cursor` to read the next page; absent on the last page. */
  nextCursor: string | undefined;
}

/**
 * A delivery due within this long counts as due: bringing it forward would send nothing sooner,
 * and two retries of one delivery a moment apart must not both count as sent.
 */
export const DUE_SOON_MS = 1000;

/**
 * Marks the pending deliveries of an inactive webhook as held, saying how to release them. A held
 * delivery has no time for its next attempt (it goes once the webhook is active again), so
 * `nextAttemptAt` is null rather than a time gone by that would read as a stalled queue.
 */
export function withHoldReason<D extends DeliverySummary>(
  delivery: D,
  webhook: { id: string; active: boolean },
): D {
  if (delivery.status !== "pending" || webhook.active) return delivery;
  return {
    ...delivery,
    nextAttemptAt: null,
    heldBecause: `Webhook '${webhook.id}' is inactive, so this delivery waits. It is sent once the webhook is active again: PUT /api/webhooks/${webhook.id} with {"active": true}.`,
  };
}
