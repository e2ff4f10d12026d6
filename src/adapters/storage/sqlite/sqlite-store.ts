/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit survives
 * power loss. Writes go through group commit (WriteBatcher).
 * Limits: one Herald process per file. Leases on deliveries are kept in this process's memory,
 * so a restart frees them at once; two processes on one file could send a delivery twice.
 * Use PostgreSQL to run several processes.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type {
  ClaimedDelivery,
  DeliveryDetail,
  DeliveryPage,
  DeliveryUpdate,
} from "../../../domain/deliveries.js";
import type { IncomingEvent } from "../../../domain/incoming.js";
import type { PendingEvent, Store } from "../../../domain/ports.js";
import type { Webhook } from "../../../domain/webhooks.js";
import { decodeCursor, encodeCursor } from "../cursor.js";
import {
  type AttemptRow,
  type ClaimRow,
  DELIVERY_COLUMNS,
  type DeliveryRow,
  type IncomingRow,
  type SourceRow,
  sourceColumns,
  toAttempt,
  toClaimedDelivery,
  toDeliverySummary,
  toIncomingEvent,
  toSource,
  toWebhook,
  type WebhookRow,
} from "../rows.js";
import { SQLITE_MIGRATIONS } from "./migrations.js";
import { WriteBatcher } from "./write-batcher.js";

function incomingParams(event: IncomingEvent) {
  return {
    id: event.id,
    service: event.service,
    event_name: event.eventName,
    dedupe_key: event.dedupeKey,
    headers: JSON.stringify(event.headers),
    raw_body: event.rawBody,
    content_type: event.contentType,
    verified_by: event.verifiedBy,
    verified: event.verified ? 1 : 0,
    status: event.status,
    outgoing_event_id: event.outgoingEventId,
    route_error: event.routeError,
    received_at: event.receivedAt,
  };
}

/** Applies the migrations this file has not seen yet. */
function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  for (let version = current; version < SQLITE_MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}

/** Opens (creating if needed) the SQLite store at `path`. */
export function openSqliteStore(path: string): Store {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  migrate(db);

  const batcher = new WriteBatcher(db);
  /** Deliveries handed to a worker and not yet recorded. */
  const leases = new Map<string, { workerId: string; until: number }>();

  const q = {
    insertWebhook: db.prepare(
      `INSERT INTO webhooks (id, name, url, events, secret, active, created_at, updated_at)
       VALUES (@id, @name, @url, @events, @secret, @active, @created_at, @updated_at)`,
    ),
    getWebhook: db.prepare<[string], WebhookRow>("SELECT * FROM webhooks WHERE id = ?"),
    listWebhooks: db.prepare<[], WebhookRow>("SELECT * FROM webhooks ORDER BY created_at, id"),
    activeWebhooks: db.prepare<[], WebhookRow>("SELECT * FROM webhooks WHERE active = 1"),
    updateWebhook: db.prepare(
      `UPDATE webhooks SET name = @name, url = @url, events = @events, active = @active,
       updated_at = @updated_at WHERE id = @id`,
    ),
    deleteWebhook: db.prepare("DELETE FROM webhooks WHERE id = ?"),
    insertEvent: db.prepare("INSERT INTO events (id, type, body, created_at) VALUES (?, ?, ?, ?)"),
    insertDelivery: db.prepare(
      `INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,
       created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)`,
    ),
    due: db.prepare<[number, number], ClaimRow>(
      `SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.created_at, w.url, w.secret, e.body
       FROM deliveries d
       JOIN webhooks w ON w.id = d.webhook_id
       JOIN events e ON e.id = d.event_id
       WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.active = 1
       ORDER BY d.next_attempt_at
       LIMIT ?`,
    ),
    nextDue: db.prepare<[], { at: number | null }>(
      `SELECT MIN(d.next_attempt_at) AS at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
       WHERE d.status = 'pending' AND w.active = 1`,
    ),
    updateDelivery: db.prepare(
      `UPDATE deliveries SET status = @status, attempts = @attempts, next_attempt_at = @next_attempt_at,
       last_status_code = @status_code, last_response_body = @response_body, last_error = @error,
       last_attempt_at = @started_at, updated_at = @updated_at WHERE id = @id`,
    ),
    // A delivery deleted with its webhook while in flight has nowhere to keep its attempt.
    insertAttempt: db.prepare(
      `INSERT OR IGNORE INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
       error, response_headers, response_body)
       SELECT @id, @attempt, @started_at, @duration_ms, @status_code, @error, @headers, @body
       WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = @id)`,
    ),
    pageFirst: db.prepare<[string, number], DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.webhook_id = ? ORDER BY d.seq DESC LIMIT ?`,
    ),
    pageAfter: db.prepare<[string, number, number], DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.webhook_id = ? AND d.seq < ? ORDER BY d.seq DESC LIMIT ?`,
    ),
    getDelivery: db.prepare<[string, string], DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.id = ? AND d.webhook_id = ?`,
    ),
    attempts: db.prepare<[string], AttemptRow>(
      "SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt",
    ),
    insertIncoming: db.prepare(
      `INSERT INTO incoming_events (id, service, event_name, dedupe_key, headers, raw_body, content_type,
       verified_by, verified, status, outgoing_event_id, route_error, received_at)
       VALUES (@id, @service, @event_name, @dedupe_key, @headers, @raw_body, @content_type, @verified_by,
       @verified, @status, @outgoing_event_id, @route_error, @received_at)
       ON CONFLICT DO NOTHING`,
    ),
    getIncoming: db.prepare<[string], IncomingRow>("SELECT * FROM incoming_events WHERE id = ?"),
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
    getSource: db.prepare<[string], SourceRow>("SELECT * FROM sources WHERE name = ?"),
    listSources: db.prepare<[], SourceRow>("SELECT * FROM sources ORDER BY name"),
    deleteSource: db.prepare("DELETE FROM sources WHERE name = ?"),
    incomingByKey: db.prepare<[string, string], { id: string }>(
      "SELECT id FROM incoming_events WHERE service = ? AND dedupe_key = ?",
    ),
  };

  /** Active webhooks, kept between writes: this process is the only writer of the file. */
  let activeWebhooks: Webhook[] | undefined;
  const webhooksChanged = () => {
    activeWebhooks = undefined;
  };

  /** Stores an outgoing event and its deliveries; runs inside a batched write. */
  function insertOutgoing({ event, selectTargets, newDeliveryId }: PendingEvent): number {
    activeWebhooks ??= q.activeWebhooks.all().map(toWebhook);
    const targets = selectTargets(activeWebhooks);
    q.insertEvent.run(event.id, event.type, event.body, event.createdAt);
    for (const webhook of targets) {
      q.insertDelivery.run(
        newDeliveryId(),
        webhook.id,
        event.id,
        event.type,
        event.createdAt,
        event.createdAt,
        event.createdAt,
      );
    }
    return targets.length;
  }

  let closed = false;

  return {
    insertWebhook: (webhook) =>
      batcher.write(() => {
        webhooksChanged();
        q.insertWebhook.run({
          id: webhook.id,
          name: webhook.name,
          url: webhook.url,
          events: JSON.stringify(webhook.events),
          secret: webhook.secret,
          active: webhook.active ? 1 : 0,
          created_at: webhook.createdAt,
          updated_at: webhook.updatedAt,
        });
      }),

    async getWebhook(id) {
      const row = q.getWebhook.get(id);
      return row ? toWebhook(row) : undefined;
    },

    async listWebhooks() {
      return q.listWebhooks.all().map(toWebhook);
    },

    updateWebhook: (webhook) =>
      batcher.write(() => {
        webhooksChanged();
        return (
          q.updateWebhook.run({
            id: webhook.id,
            name: webhook.name,
            url: webhook.url,
            events: JSON.stringify(webhook.events),
            active: webhook.active ? 1 : 0,
            updated_at: webhook.updatedAt,
          }).changes > 0
        );
      }),

    deleteWebhook: (id) =>
      batcher.write(() => {
        webhooksChanged();
        return q.deleteWebhook.run(id).changes > 0;
      }),

    enqueueEvent: (event, selectTargets, newDeliveryId) =>
      batcher.write(() => insertOutgoing({ event, selectTargets, newDeliveryId })),

    async claimDueDeliveries({ now, limit, workerId, leaseUntil }) {
      const claimed: ClaimedDelivery[] = [];
      for (const row of q.due.all(now, limit + leases.size)) {
        const held = leases.get(row.id);
        if (held !== undefined && held.until > now) continue;
        leases.set(row.id, { workerId, until: leaseUntil });
        claimed.push(toClaimedDelivery(row));
        if (claimed.length >= limit) break;
      }
      return claimed;
    },

    async recordAttempt(update: DeliveryUpdate, workerId: string) {
      const { attempt } = update;
      // Only the lease holder moves the delivery on; a stale worker's attempt is kept in the history.
      const holdsLease = leases.get(update.deliveryId)?.workerId === workerId;
      try {
        await batcher.write(() => {
          if (holdsLease)
            q.updateDelivery.run({
              id: update.deliveryId,
              status: update.status,
              attempts: update.attempts,
              next_attempt_at: update.nextAttemptAt,
              status_code: attempt.statusCode,
              response_body: attempt.responseBody,
              error: attempt.error,
              started_at: attempt.startedAt,
              updated_at: attempt.startedAt + attempt.durationMs,
            });
          q.insertAttempt.run({
            id: update.deliveryId,
            attempt: attempt.attempt,
            started_at: attempt.startedAt,
            duration_ms: attempt.durationMs,
            status_code: attempt.statusCode,
            error: attempt.error,
            headers: attempt.responseHeaders ? JSON.stringify(attempt.responseHeaders) : null,
            body: attempt.responseBody,
          });
        });
      } finally {
        if (holdsLease) leases.delete(update.deliveryId);
      }
    },

    async releaseExpiredLeases(now) {
      let released = 0;
      for (const [id, lease] of leases) {
        if (lease.until <= now) {
          leases.delete(id);
          released++;
        }
      }
      return released;
    },

    async nextDueAt() {
      return q.nextDue.get()?.at ?? undefined;
    },

    async listDeliveries(webhookId, { limit, cursor }): Promise<DeliveryPage> {
      const rows =
        cursor === undefined
          ? q.pageFirst.all(webhookId, limit + 1)
          : q.pageAfter.all(webhookId, decodeCursor(cursor), limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        deliveries: page.map(toDeliverySummary),
        nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : undefined,
      };
    },

    async getDelivery(webhookId, deliveryId): Promise<DeliveryDetail | undefined> {
      const row = q.getDelivery.get(deliveryId, webhookId);
      if (!row) return undefined;
      return { ...toDeliverySummary(row), attemptLog: q.attempts.all(deliveryId).map(toAttempt) };
    },

    saveIncoming: (event: IncomingEvent, route?: PendingEvent) =>
      batcher.write(() => {
        const inserted = q.insertIncoming.run(incomingParams(event));
        if (inserted.changes > 0 || event.dedupeKey === null) {
          return {
            eventId: event.id,
            duplicate: false,
            deliveries: route ? insertOutgoing(route) : 0,
          };
        }
        const first = q.incomingByKey.get(event.service, event.dedupeKey);
        return { eventId: first?.id ?? event.id, duplicate: true, deliveries: 0 };
      }),

    async listIncoming({ source, status, since, until, limit, cursor }) {
      const where: string[] = [];
      const params: Array<string | number> = [];
      const add = (clause: string, value: string | number) => {
        where.push(clause);
        params.push(value);
      };
      if (source !== undefined) add("service = ?", source);
      if (status !== undefined) add("status = ?", status);
      if (since !== undefined) add("received_at >= ?", since);
      if (until !== undefined) add("received_at < ?", until);
      if (cursor !== undefined) add("seq < ?", decodeCursor(cursor));
      const rows = db
        .prepare<Array<string | number>, IncomingRow>(
          `SELECT * FROM incoming_events ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
           ORDER BY seq DESC LIMIT ?`,
        )
        .all(...params, limit + 1);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        events: page.map(toIncomingEvent),
        nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : undefined,
      };
    },

    async getIncoming(id) {
      const row = q.getIncoming.get(id);
      return row ? toIncomingEvent(row) : undefined;
    },

    recordRouting: (id, outcome, route) =>
      batcher.write(() => {
        q.updateRouting.run(outcome.status, outcome.outgoingEventId, outcome.routeError, id);
        return route ? insertOutgoing(route) : 0;
      }),

    insertSource: (source) =>
      batcher.write(() => {
        q.insertSource.run(...sourceColumns(source));
      }),

    saveSource: (source) =>
      batcher.write(() => {
        q.saveSource.run(...sourceColumns(source));
      }),

    async getSource(name) {
      const row = q.getSource.get(name);
      return row ? toSource(row) : undefined;
    },

    async listSources() {
      return q.listSources.all().map(toSource);
    },

    deleteSource: (name) => batcher.write(() => q.deleteSource.run(name).changes > 0),

    async close() {
      if (closed) return;
      closed = true;
      batcher.flush();
      db.close();
    },
  };
}
