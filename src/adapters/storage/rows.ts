/** Row shapes shared by the SQL stores, and their mapping to domain values. */
import type {
  AttemptRecord,
  ClaimedDelivery,
  DeliveryStatus,
  DeliverySummary,
} from "../../domain/deliveries.js";
import type { Webhook } from "../../domain/webhooks.js";

export interface WebhookRow {
  id: string;
  name: string;
  url: string;
  events: string;
  secret: string;
  /** 0/1 in SQLite, boolean in PostgreSQL. */
  active: number | boolean;
  created_at: number;
  updated_at: number;
}

export interface DeliveryRow {
  seq: number;
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  body: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  last_status_code: number | null;
  last_response_body: string | null;
  last_error: string | null;
  last_attempt_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface AttemptRow {
  delivery_id: string;
  attempt: number;
  started_at: number;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_headers: string | null;
  response_body: string | null;
}

export interface ClaimRow {
  id: string;
  webhook_id: string;
  event_id: string;
  event_type: string;
  attempts: number;
  created_at: number;
  url: string;
  secret: string;
  body: string;
}

/** The delivery columns every history query selects (deliveries `d` joined with events `e`). */
export const DELIVERY_COLUMNS = `d.seq, d.id, d.webhook_id, d.event_id, d.event_type, e.body, d.status,
  d.attempts, d.next_attempt_at, d.last_status_code, d.last_response_body, d.last_error,
  d.last_attempt_at, d.created_at, d.updated_at`;

export function toWebhook(row: WebhookRow): Webhook {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    events: JSON.parse(row.events) as string[],
    secret: row.secret,
    active: row.active === true || row.active === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toDeliverySummary(row: DeliveryRow): DeliverySummary {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    eventId: row.event_id,
    event: row.event_type,
    body: row.body,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === "pending" ? row.next_attempt_at : null,
    lastStatusCode: row.last_status_code,
    lastResponseBody: row.last_response_body,
    lastError: row.last_error,
    lastAttemptAt: row.last_attempt_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function toAttempt(row: AttemptRow): AttemptRecord {
  return {
    deliveryId: row.delivery_id,
    attempt: row.attempt,
    startedAt: row.started_at,
    durationMs: row.duration_ms,
    statusCode: row.status_code,
    error: row.error,
    responseHeaders: row.response_headers
      ? (JSON.parse(row.response_headers) as Record<string, string>)
      : null,
    responseBody: row.response_body,
  };
}

export function toClaimedDelivery(row: ClaimRow): ClaimedDelivery {
  return {
    id: row.id,
    webhookId: row.webhook_id,
    eventId: row.event_id,
    eventType: row.event_type,
    url: row.url,
    secret: row.secret,
    body: row.body,
    attempts: row.attempts,
    createdAt: row.created_at,
  };
}
