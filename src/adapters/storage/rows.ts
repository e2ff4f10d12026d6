/** Row shapes shared by the SQL stores, and their mapping to domain values. */
import type {
  AttemptRecord,
  ClaimedDelivery,
  DeliveryStatus,
  DeliverySummary,
  OutgoingEvent,
} from "../../domain/deliveries.js";
import type { IncomingEvent, IncomingStatus, RoutedEvent } from "../../domain/incoming.js";
import type { WebhookPage } from "../../domain/ports.js";
import type { RoutingRule } from "../../domain/routing.js";
import type { Source, SourceSettings } from "../../domain/sources.js";
import type { VerifierSpec } from "../../domain/verifier-specs.js";
import type { Webhook } from "../../domain/webhooks.js";
import { encodeWebhookCursor } from "./cursor.js";

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
  /** With the headers, the rest of the latest attempt; null on rows written before they existed. */
  last_duration_ms: number | null;
  last_response_headers: string | null;
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

/**
 * The payload a page of delivery history carries at most (characters on SQLite, bytes on
 * PostgreSQL): a page of 500 deliveries of 1 MB each would otherwise be read whole into memory and
 * sent as one answer. A page past it ends early, with a cursor for the rest; it always holds one.
 */
export const PAGE_PAYLOAD_LIMIT = 4 * 1024 * 1024;

/**
 * Takes the rows of a page, newest first (a body of null marks a row read past the payload limit),
 * up to `limit` of them and while their bodies fit PAGE_PAYLOAD_LIMIT; says whether more remain.
 * Stops reading `rows` as soon as the page is full.
 */
export function cutPage<T extends { body: string | null }>(
  rows: Iterable<T>,
  limit: number,
): { page: Array<T & { body: string }>; more: boolean } {
  const page: Array<T & { body: string }> = [];
  let payload = 0;
  for (const row of rows) {
    const { body } = row;
    const full =
      page.length === limit ||
      (page.length > 0 && (body === null || payload + body.length > PAGE_PAYLOAD_LIMIT));
    if (full || body === null) return { page, more: true };
    payload += body.length;
    page.push(row as T & { body: string });
  }
  return { page, more: false };
}

/**
 * A history page's filter on status, written out rather than bound, so that the planner may serve
 * `failed` from its partial index.
 */
export const STATUS_FILTER: Record<DeliveryStatus, string> = {
  pending: "AND d.status = 'pending'",
  success: "AND d.status = 'success'",
  failed: "AND d.status = 'failed'",
};

/** The delivery columns every history query selects (deliveries `d` joined with events `e`). */
export const DELIVERY_COLUMNS = `d.seq, d.id, d.webhook_id, d.event_id, d.event_type, e.body, d.status,
  d.attempts, d.next_attempt_at, d.last_status_code, d.last_response_body, d.last_error,
  d.last_attempt_at, d.last_duration_ms, d.last_response_headers, d.created_at, d.updated_at`;

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

/** A page of `limit` webhooks out of `read`, which holds one more when another page follows. */
export function pageOfWebhooks(read: Webhook[], limit: number): WebhookPage {
  const webhooks = read.slice(0, limit);
  const last = webhooks[webhooks.length - 1];
  return {
    webhooks,
    nextCursor: read.length > limit && last ? encodeWebhookCursor(last) : undefined,
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
    responseHeaders: parseHeaders(row.response_headers),
    responseBody: row.response_body,
  };
}

function parseHeaders(json: string | null): Record<string, string> | null {
  return json ? (JSON.parse(json) as Record<string, string>) : null;
}

/**
 * A delivery's attempts, oldest first. The latest lives in the delivery's own row (so the usual
 * delivery, answered at the first attempt, costs one write); earlier ones were moved to the
 * attempts table as each next attempt was recorded.
 */
export function toAttemptLog(row: DeliveryRow, earlier: AttemptRow[]): AttemptRecord[] {
  const log = earlier.map(toAttempt);
  if (row.attempts === 0 || row.last_attempt_at === null || row.last_duration_ms === null) {
    return log;
  }
  const latest: AttemptRecord = {
    deliveryId: row.id,
    attempt: row.attempts,
    startedAt: row.last_attempt_at,
    durationMs: row.last_duration_ms,
    statusCode: row.last_status_code,
    error: row.last_error,
    responseHeaders: parseHeaders(row.last_response_headers),
    responseBody: row.last_response_body,
  };
  // The table may hold the latest attempt too (rows written before it was kept in the delivery's
  // row); an attempt of the same number started at another time was sent by a worker whose lease
  // had run out, and stays.
  const kept = log.filter(
    (attempt) => attempt.attempt !== latest.attempt || attempt.startedAt !== latest.startedAt,
  );
  kept.push(latest);
  return kept.sort((a, b) => a.attempt - b.attempt || a.startedAt - b.startedAt);
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

export interface IncomingRow {
  seq: number;
  id: string;
  service: string;
  event_name: string | null;
  dedupe_key: string | null;
  headers: string;
  raw_body: Buffer;
  content_type: string | null;
  verified_by: string;
  verified: number | boolean;
  status: IncomingStatus;
  outgoing_event_id: string | null;
  route_error: string | null;
  received_at: number;
}

export interface EventRow {
  id: string;
  type: string;
  body: string;
  created_at: number | string;
  incoming_event_id: string | null;
}

export function toOutgoingEvent(row: EventRow): OutgoingEvent {
  return {
    id: row.id,
    type: row.type,
    body: row.body,
    createdAt: Number(row.created_at),
    ...(row.incoming_event_id === null ? {} : { incomingEventId: row.incoming_event_id }),
  };
}

export interface RoutedEventRow {
  id: string;
  type: string;
  created_at: number | string;
}

export function toRoutedEvent(row: RoutedEventRow): RoutedEvent {
  return { id: row.id, type: row.type, createdAt: Number(row.created_at) };
}

export function toIncomingEvent(row: IncomingRow): IncomingEvent {
  return {
    id: row.id,
    service: row.service,
    eventName: row.event_name,
    dedupeKey: row.dedupe_key,
    headers: JSON.parse(row.headers) as Record<string, string>,
    rawBody: Buffer.from(row.raw_body),
    contentType: row.content_type,
    verifiedBy: row.verified_by,
    verified: row.verified === true || row.verified === 1,
    status: row.status,
    outgoingEventId: row.outgoing_event_id,
    routeError: row.route_error,
    receivedAt: row.received_at,
  };
}

export interface SourceRow {
  name: string;
  verifier: string;
  secret: string | null;
  rules: string;
  settings: string;
  created_at: number;
  updated_at: number;
}

export function toSource(row: SourceRow): Source {
  return {
    name: row.name,
    verifier: JSON.parse(row.verifier) as VerifierSpec,
    secret: row.secret,
    rules: JSON.parse(row.rules) as RoutingRule[],
    settings: JSON.parse(row.settings) as SourceSettings,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A source's columns, in the order name, verifier, secret, rules, settings, created_at, updated_at. */
export function sourceColumns(
  source: Source,
): [string, string, string | null, string, string, number, number] {
  return [
    source.name,
    JSON.stringify(source.verifier),
    source.secret,
    JSON.stringify(source.rules),
    JSON.stringify(source.settings),
    source.createdAt,
    source.updatedAt,
  ];
}
