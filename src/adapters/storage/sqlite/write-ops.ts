/**
 * Every write of the SQLite store, as plain data, so that writes can be handed to the writer thread
 * and committed there. `createWriteStatements` prepares them on one connection; `applyWriteOp`
 * runs one.
 */
import type Database from "better-sqlite3";
import {
  type DeliveryUpdate,
  DUE_SOON_MS,
  type OutgoingEvent,
} from "../../../domain/deliveries.js";

type Columns = Record<string, string | number | bigint | Buffer | null>;

/** An outgoing event and the webhooks chosen to receive it. */
export interface OutgoingWrite {
  event: OutgoingEvent;
  deliveries: Array<{ id: string; webhookId: string }>;
}

export type WriteOp =
  | { kind: "insertWebhook"; row: Columns }
  | { kind: "updateWebhook"; row: Columns }
  | { kind: "deleteWebhook"; id: string }
  | { kind: "deleteDeliverySlice"; webhookId: string; throughSeq: number; limit: number }
  | { kind: "outgoing"; outgoing: OutgoingWrite }
  | { kind: "attempt"; columns: AttemptColumns; moveDelivery: boolean }
  | { kind: "requeueDelivery"; id: string; webhookId: string; now: number }
  | { kind: "bringDeliveryForward"; id: string; webhookId: string; now: number }
  | { kind: "incoming"; row: Columns; outgoing: OutgoingWrite | undefined }
  | {
      kind: "routing";
      id: string;
      status: string;
      outgoingEventId: string | null;
      routeError: string | null;
      outgoing: OutgoingWrite | undefined;
    }
  | { kind: "insertSource"; columns: unknown[] }
  | { kind: "saveSource"; columns: unknown[] }
  | { kind: "deleteSource"; name: string };

/**
 * An attempt and its delivery's new state, flat: the hottest write crosses to the writer thread
 * cheaply as an array of plain values.
 */
export type AttemptColumns = [
  deliveryId: string,
  status: string,
  attempts: number,
  nextAttemptAt: number | null,
  attempt: number,
  startedAt: number,
  durationMs: number,
  statusCode: number | null,
  error: string | null,
  responseHeaders: Record<string, string> | null,
  responseBody: string | null,
];

/** Flattens an attempt for the writer thread. */
export function attemptColumns(update: DeliveryUpdate): AttemptColumns {
  const { attempt } = update;
  return [
    update.deliveryId,
    update.status,
    update.attempts,
    update.nextAttemptAt,
    attempt.attempt,
    attempt.startedAt,
    attempt.durationMs,
    attempt.statusCode,
    attempt.error,
    attempt.responseHeaders,
    attempt.responseBody,
  ];
}

/** What an op answers: a count, a flag, or, for an incoming webhook, its id and deliveries queued. */
export type WriteResult =
  | number
  | boolean
  | null
  | { eventId: string; duplicate: boolean; deliveries: number };

/** Prepares the write statements on `db`. */
export function createWriteStatements(db: Database.Database) {
  return {
    insertWebhook: db.prepare(
      `INSERT INTO webhooks (id, name, url, events, secret, active, created_at, updated_at)
       VALUES (@id, @name, @url, @events, @secret, @active, @created_at, @updated_at)`,
    ),
    updateWebhook: db.prepare(
      `UPDATE webhooks SET name = @name, url = @url, events = @events, active = @active,
       updated_at = @updated_at WHERE id = @id`,
    ),
    deleteWebhook: db.prepare("DELETE FROM webhooks WHERE id = ?"),
    // The oldest of a webhook's deliveries up to a seq, with their attempts (by cascade).
    deleteDeliverySlice: db.prepare<[string, number, number]>(
      `DELETE FROM deliveries WHERE seq IN (
         SELECT seq FROM deliveries WHERE webhook_id = ? AND seq <= ? ORDER BY seq LIMIT ?)`,
    ),
    insertEvent: db.prepare(
      "INSERT INTO events (id, type, body, created_at, incoming_event_id) VALUES (?, ?, ?, ?, ?)",
    ),
    // A webhook deleted or paused since it was chosen gets no delivery. Positional parameters: bound
    // from an object by name, this hottest insert cost 15 to 35 % more CPU per row.
    insertDelivery: db.prepare<[string, string, string, string, number, number, number, string]>(
      `INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,
       created_at, updated_at)
       SELECT ?, ?, ?, ?, 'pending', 0, ?, ?, ?
       WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ? AND active = 1)`,
    ),
    updateDelivery: db.prepare(
      `UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status_code = ?,
       last_response_body = ?, last_error = ?, last_attempt_at = ?, last_duration_ms = ?,
       last_response_headers = ?, updated_at = ? WHERE id = ?`,
    ),
    // Before a delivery's row takes its new latest attempt, the one it held moves to the attempts
    // table (rows from before last_duration_ms existed have theirs there already).
    keepPreviousAttempt: db.prepare(
      `INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
       error, response_headers, response_body)
       SELECT id, attempts, last_attempt_at, last_duration_ms, last_status_code, last_error,
         last_response_headers, last_response_body
       FROM deliveries WHERE id = ? AND attempts > 0 AND last_duration_ms IS NOT NULL`,
    ),
    // A delivery deleted with its webhook while in flight has nowhere to keep its attempt.
    insertAttemptIfDelivery: db.prepare(
      `INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
       error, response_headers, response_body)
       SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = ?)`,
    ),
    // A delivery queued again keeps its latest attempt in the history, and in its row only what the
    // receiver answered: that attempt's error told what to do next, which no longer applies.
    keepAttemptOfSettled: db.prepare(
      `INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
       error, response_headers, response_body)
       SELECT id, attempts, last_attempt_at, last_duration_ms, last_status_code, last_error,
         last_response_headers, last_response_body
       FROM deliveries WHERE id = ? AND webhook_id = ? AND status <> 'pending' AND attempts > 0
         AND last_duration_ms IS NOT NULL`,
    ),
    requeueDelivery: db.prepare(
      `UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?, last_error = NULL,
       last_duration_ms = NULL
       WHERE id = ? AND webhook_id = ? AND status <> 'pending'`,
    ),
    bringDeliveryForward: db.prepare(
      `UPDATE deliveries SET next_attempt_at = ?, updated_at = ?
       WHERE id = ? AND webhook_id = ? AND status = 'pending' AND next_attempt_at > ?`,
    ),
    insertIncoming: db.prepare(
      `INSERT INTO incoming_events (id, service, event_name, dedupe_key, headers, raw_body, content_type,
       verified_by, verified, status, outgoing_event_id, route_error, received_at)
       VALUES (@id, @service, @event_name, @dedupe_key, @headers, @raw_body, @content_type, @verified_by,
       @verified, @status, @outgoing_event_id, @route_error, @received_at)
       ON CONFLICT DO NOTHING`,
    ),
    incomingByKey: db.prepare<[string, string], { id: string }>(
      "SELECT id FROM incoming_events WHERE service = ? AND dedupe_key = ?",
    ),
    updateRouting: db.prepare(
      "UPDATE incoming_events SET status = ?, outgoing_event_id = ?, route_error = ? WHERE id = ?",
    ),
    insertSource: db.prepare(
      `INSERT INTO sources (name, verifier, secret, rules, settings, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    saveSource: db.prepare(
      `INSERT INTO sources (name, verifier, secret, rules, settings, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET verifier = excluded.verifier, secret = excluded.secret,
       rules = excluded.rules, settings = excluded.settings, updated_at = excluded.updated_at`,
    ),
    deleteSource: db.prepare("DELETE FROM sources WHERE name = ?"),
    forgetDedupeKeys: db.prepare(
      "UPDATE incoming_events SET dedupe_key = NULL WHERE service = ? AND dedupe_key IS NOT NULL",
    ),
  };
}

export type WriteStatements = ReturnType<typeof createWriteStatements>;

function writeOutgoing(q: WriteStatements, { event, deliveries }: OutgoingWrite): number {
  q.insertEvent.run(
    event.id,
    event.type,
    event.body,
    event.createdAt,
    event.incomingEventId ?? null,
  );
  let queued = 0;
  for (const delivery of deliveries) {
    queued += q.insertDelivery.run(
      delivery.id,
      delivery.webhookId,
      event.id,
      event.type,
      event.createdAt,
      event.createdAt,
      event.createdAt,
      delivery.webhookId,
    ).changes;
  }
  return queued;
}

/** Runs one op on the connection the statements were prepared on. */
export function applyWriteOp(q: WriteStatements, op: WriteOp): WriteResult {
  switch (op.kind) {
    case "insertWebhook":
      q.insertWebhook.run(op.row);
      return null;
    case "updateWebhook":
      return q.updateWebhook.run(op.row).changes > 0;
    case "deleteWebhook":
      return q.deleteWebhook.run(op.id).changes > 0;
    case "deleteDeliverySlice":
      return q.deleteDeliverySlice.run(op.webhookId, op.throughSeq, op.limit).changes;
    case "outgoing":
      return writeOutgoing(q, op.outgoing);
    case "attempt": {
      const [
        id,
        status,
        attempts,
        next,
        number,
        startedAt,
        durationMs,
        code,
        error,
        headers,
        body,
      ] = op.columns;
      const kept = headers ? JSON.stringify(headers) : null;
      if (op.moveDelivery) {
        if (number > 1) q.keepPreviousAttempt.run(id);
        const moved = q.updateDelivery.run(
          status,
          attempts,
          next,
          code,
          body,
          error,
          startedAt,
          durationMs,
          kept,
          startedAt + durationMs,
          id,
        ).changes;
        if (moved > 0) return null;
      }
      // Sent by a worker whose lease had run out: kept as history, if the delivery still exists.
      q.insertAttemptIfDelivery.run(id, number, startedAt, durationMs, code, error, kept, body, id);
      return null;
    }
    case "requeueDelivery":
      q.keepAttemptOfSettled.run(op.id, op.webhookId);
      return q.requeueDelivery.run(op.now, op.now, op.id, op.webhookId).changes > 0;
    case "bringDeliveryForward":
      return (
        q.bringDeliveryForward.run(op.now, op.now, op.id, op.webhookId, op.now + DUE_SOON_MS)
          .changes > 0
      );
    case "incoming": {
      const id = op.row.id as string;
      const dedupeKey = op.row.dedupe_key as string | null;
      if (q.insertIncoming.run(op.row).changes > 0 || dedupeKey === null) {
        return {
          eventId: id,
          duplicate: false,
          deliveries: op.outgoing ? writeOutgoing(q, op.outgoing) : 0,
        };
      }
      const first = q.incomingByKey.get(op.row.service as string, dedupeKey);
      return { eventId: first?.id ?? id, duplicate: true, deliveries: 0 };
    }
    case "routing":
      q.updateRouting.run(op.status, op.outgoingEventId, op.routeError, op.id);
      return op.outgoing ? writeOutgoing(q, op.outgoing) : 0;
    case "insertSource":
      q.insertSource.run(...op.columns);
      return null;
    case "saveSource":
      q.saveSource.run(...op.columns);
      return null;
    case "deleteSource": {
      const deleted = q.deleteSource.run(op.name).changes > 0;
      if (deleted) q.forgetDedupeKeys.run(op.name);
      return deleted;
    }
  }
}
