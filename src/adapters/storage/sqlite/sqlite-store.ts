/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL, so a commit survives
 * power loss. Writes are committed in batches by a writer thread (SqliteWriter), so fsyncs never
 * block the event loop; reads run here on their own connection and see every committed write.
 * Limits: one Herald process per file (a file path, not `:memory:`). Leases on deliveries are kept
 * in this process's memory, so a restart frees them at once; two processes on one file could send
 * a delivery twice. Use PostgreSQL to run several processes.
 */
import { closeSync, existsSync, mkdirSync, openSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import {
  type DeliveryDetail,
  type DeliveryPage,
  type DeliveryStatus,
  type DeliveryUpdate,
  freshDelivery,
} from "../../../domain/deliveries.js";
import type { IncomingEvent } from "../../../domain/incoming.js";
import type { LocalDeliveryTaker, Logger, PendingEvent, Store } from "../../../domain/ports.js";
import type { Webhook } from "../../../domain/webhooks.js";
import { decodeCursor, decodeWebhookCursor, encodeCursor } from "../cursor.js";
import {
  type AttemptRow,
  type ClaimRow,
  cutPage,
  DELIVERY_COLUMNS,
  type DeliveryRow,
  type EventRow,
  type IncomingRow,
  pageOfWebhooks,
  type RoutedEventRow,
  type SourceRow,
  STATUS_FILTER,
  sourceColumns,
  toAttemptLog,
  toClaimedDelivery,
  toDeliverySummary,
  toIncomingEvent,
  toOutgoingEvent,
  toRoutedEvent,
  toSource,
  toWebhook,
  type WebhookRow,
} from "../rows.js";
import {
  type MigrationResult,
  migrationResult,
  schemaAheadNotice,
  schemaUpgradeNotice,
} from "../schema-version.js";
import { SQLITE_MIGRATIONS } from "./migrations.js";
import { SqliteWriter } from "./sqlite-writer.js";
import { attemptColumns, type OutgoingWrite } from "./write-ops.js";

/** Deliveries deleted per write when a webhook goes: a few milliseconds of the writer's time. */
const DELETE_SLICE = 1000;

/**
 * The bytes on memory of their own. A small Buffer is a view into an 8 KB pool, and crossing to the
 * writer thread copies the whole memory a view sits on.
 */
function ownBytes(bytes: Buffer): Buffer {
  return bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : Buffer.from(new Uint8Array(bytes).buffer);
}

function incomingParams(event: IncomingEvent) {
  return {
    id: event.id,
    service: event.service,
    event_name: event.eventName,
    dedupe_key: event.dedupeKey,
    headers: JSON.stringify(event.headers),
    raw_body: ownBytes(event.rawBody),
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
function migrate(db: Database.Database): MigrationResult {
  const current = db.pragma("user_version", { simple: true }) as number;
  for (let version = current; version < SQLITE_MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(SQLITE_MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
  return migrationResult(current, SQLITE_MIGRATIONS.length);
}

export interface SqliteStoreOptions {
  /** Told that the schema is newer than this release, or that it was upgraded. */
  logger?: Logger;
  /** Hears what migrating the file did. */
  migrated?: (result: MigrationResult) => void;
}

/** Error of a second process opening a SQLite database that another Herald process uses. */
export class DatabaseInUseError extends Error {
  readonly code = "HERALD_DATABASE_IN_USE";
}

/**
 * One process owns a SQLite database: it holds an exclusive lock on `<file>-owner` for as long as
 * it runs. The operating system drops that lock when the process ends, even by kill -9, so a
 * restart takes it at once, while a second process on the same file refuses to start instead of
 * sending every delivery twice.
 */
function claimOwnership(path: string): Database.Database {
  // The real path, so that a link to the same database finds the same lock.
  const ownerPath = `${realpathSync(path)}-owner`;
  if (!existsSync(ownerPath)) closeSync(openSync(ownerPath, "a", 0o600));
  const owner = new Database(ownerPath, { timeout: 0 });
  try {
    owner.pragma("locking_mode = EXCLUSIVE");
    // Nothing here needs a journal on disk: the file exists for its lock.
    owner.pragma("journal_mode = MEMORY");
    // The lock is taken, and kept, by the first write.
    owner.exec("CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL, since INTEGER NOT NULL)");
    owner.transaction(() => {
      owner.exec("DELETE FROM owner");
      owner.prepare("INSERT INTO owner (pid, since) VALUES (?, ?)").run(process.pid, Date.now());
    })();
    return owner;
  } catch (error) {
    owner.close();
    if ((error as { code?: string }).code === "SQLITE_BUSY") {
      throw new DatabaseInUseError(
        `Another Herald process is using the database ${path}. A SQLite database serves one process: stop the other one, give this one its own HERALD_DATA_DIR, or run several processes on PostgreSQL (DATABASE_URL=postgres://…).`,
      );
    }
    throw error;
  }
}

/** Opens (creating if needed) the SQLite store at `path`, which this process then owns. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  mkdirSync(dirname(path), { recursive: true });
  // The file holds webhook secrets: a new one is readable by its owner alone (SQLite gives its
  // -wal and -shm files the same mode).
  if (path !== ":memory:" && !existsSync(path)) closeSync(openSync(path, "a", 0o600));
  const owner = claimOwnership(path);
  let db: Database.Database;
  try {
    db = new Database(path);
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    const migrated = migrate(db);
    options.migrated?.(migrated);
    const ahead = schemaAheadNotice(migrated);
    if (ahead !== undefined) options.logger?.warn({}, ahead);
    const upgraded = schemaUpgradeNotice(migrated);
    if (upgraded !== undefined) options.logger?.info({}, upgraded);
    // A file this user may read but not write opens without complaint and fails at the first
    // write: a write now makes that a start-up error rather than a 503 on every request.
    db.pragma(`user_version = ${db.pragma("user_version", { simple: true }) as number}`);
  } catch (error) {
    owner.close();
    throw error;
  }
  const writer = new SqliteWriter(path);
  /** Deliveries handed to a worker and not yet recorded. */
  const leases = new Map<string, { workerId: string; until: number }>();

  const q = {
    getWebhook: db.prepare<[string], WebhookRow>("SELECT * FROM webhooks WHERE id = ?"),
    listWebhooks: db.prepare<[], WebhookRow>("SELECT * FROM webhooks ORDER BY created_at, id"),
    webhooksFirst: db.prepare<[number], WebhookRow>(
      "SELECT * FROM webhooks ORDER BY created_at, id LIMIT ?",
    ),
    webhooksAfter: db.prepare<[number, string, number], WebhookRow>(
      "SELECT * FROM webhooks WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?",
    ),
    newestDeliverySeq: db.prepare<[string], { seq: number | null }>(
      "SELECT MAX(seq) AS seq FROM deliveries WHERE webhook_id = ?",
    ),
    activeWebhooks: db.prepare<[], WebhookRow>("SELECT * FROM webhooks WHERE active = 1"),
    // Leased rows are skipped inside the query, before anything is read out of them.
    dueIds: db.prepare<[number, string, string, number], { id: string }>(
      `SELECT d.id FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
       WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND w.active = 1
         AND d.id NOT IN (SELECT value FROM json_each(?))
         AND d.webhook_id NOT IN (SELECT value FROM json_each(?))
       ORDER BY d.next_attempt_at
       LIMIT ?`,
    ),
    // The active webhooks, less those skipped, with a pending delivery due: one index seek each.
    webhooksDue: db.prepare<[string, number], { id: string }>(
      `SELECT w.id FROM webhooks w
       WHERE w.active = 1 AND w.id NOT IN (SELECT value FROM json_each(?))
         AND (SELECT MIN(d.next_attempt_at) FROM deliveries d
              WHERE d.webhook_id = w.id AND d.status = 'pending') <= ?`,
    ),
    dueIdsOf: db.prepare<[string, number, number], { id: string; at: number }>(
      `SELECT d.id, d.next_attempt_at AS at FROM deliveries d
       WHERE d.webhook_id = ? AND d.status = 'pending' AND d.next_attempt_at <= ?
       ORDER BY d.next_attempt_at
       LIMIT ?`,
    ),
    ping: db.prepare("SELECT 1"),
    claimRows: db.prepare<[string], ClaimRow>(
      `SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.created_at, w.url, w.secret, e.body
       FROM deliveries d
       JOIN webhooks w ON w.id = d.webhook_id
       JOIN events e ON e.id = d.event_id
       WHERE d.id IN (SELECT value FROM json_each(?))
       ORDER BY d.next_attempt_at`,
    ),
    // Walks the due-time index from `after`, so a long queue costs nothing here.
    nextDue: db.prepare<[number], { at: number }>(
      `SELECT d.next_attempt_at AS at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
       WHERE d.status = 'pending' AND d.next_attempt_at > ? AND w.active = 1
       ORDER BY d.next_attempt_at LIMIT 1`,
    ),
    pendingCounts: db.prepare<[number, number], { due: number | null; later: number | null }>(
      `SELECT SUM(d.next_attempt_at <= ? OR d.attempts = 0) AS due,
         SUM(d.next_attempt_at > ? AND d.attempts > 0) AS later
       FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
       WHERE d.status = 'pending' AND w.active = 1`,
    ),
    getDelivery: db.prepare<[string, string], DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
       WHERE d.id = ? AND d.webhook_id = ?`,
    ),
    attempts: db.prepare<[string], AttemptRow>(
      "SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY attempt, started_at",
    ),
    getIncoming: db.prepare<[string], IncomingRow>("SELECT * FROM incoming_events WHERE id = ?"),
    getEvent: db.prepare<[string], EventRow>(
      "SELECT id, type, body, created_at, incoming_event_id FROM events WHERE id = ?",
    ),
    routedEvents: db.prepare<[string, number], RoutedEventRow>(
      `SELECT id, type, created_at FROM events WHERE incoming_event_id = ?
       ORDER BY created_at DESC, id DESC LIMIT ?`,
    ),
    getSource: db.prepare<[string], SourceRow>("SELECT * FROM sources WHERE name = ?"),
    listSources: db.prepare<[], SourceRow>("SELECT * FROM sources ORDER BY name"),
  };

  /**
   * A webhook's history, newest first, from a seq down, in any status or in one. The index is
   * named: failed deliveries have their own (few rows, found at once), and the rest are read in
   * seq order from the webhook's, where the newest of a status come first; sorting a webhook's
   * whole backlog of pending deliveries by seq would cost far more.
   */
  const historyPages = new Map<
    DeliveryStatus | undefined,
    Database.Statement<[string, number, number], DeliveryRow>
  >();
  function historyPage(status: DeliveryStatus | undefined) {
    let statement = historyPages.get(status);
    if (!statement) {
      const index = status === "failed" ? "deliveries_failed_by_webhook" : "deliveries_by_webhook";
      statement = db.prepare<[string, number, number], DeliveryRow>(
        `SELECT ${DELIVERY_COLUMNS} FROM deliveries d INDEXED BY ${index}
         JOIN events e ON e.id = d.event_id
         WHERE d.webhook_id = ? AND d.seq < ? ${status ? STATUS_FILTER[status] : ""}
         ORDER BY d.seq DESC LIMIT ?`,
      );
      historyPages.set(status, statement);
    }
    return statement;
  }

  /** Active webhooks, read once per change: every webhook write goes through this process. */
  let activeWebhooks: Webhook[] | undefined;
  const afterWebhookWrite = <T>(write: Promise<T>): Promise<T> => {
    activeWebhooks = undefined;
    return write.finally(() => {
      activeWebhooks = undefined;
    });
  };

  /** Chooses the receivers of an outgoing event; the writer skips any deleted or paused meanwhile. */
  function outgoingWrite({ event, selectTargets, newDeliveryId }: PendingEvent): {
    write: OutgoingWrite;
    targets: Webhook[];
  } {
    activeWebhooks ??= q.activeWebhooks.all().map(toWebhook);
    const targets = selectTargets(activeWebhooks);
    const deliveries = targets.map((webhook) => ({ id: newDeliveryId(), webhookId: webhook.id }));
    return { write: { event, deliveries }, targets };
  }

  let taker: LocalDeliveryTaker | undefined;

  /**
   * Writes an outgoing event; when the local worker has room, its deliveries are leased to it
   * before the commit and handed over after it. If the writer skipped any (a webhook deleted or
   * paused meanwhile), none is handed over; the worker hears that those stored wait to be claimed,
   * as it does when it had no room.
   */
  function writeHandingOver<T>(
    chosen: { write: OutgoingWrite; targets: Webhook[] } | undefined,
    write: (outgoing: OutgoingWrite | undefined) => Promise<T>,
    queued: (result: T) => number,
  ): Promise<T> {
    const deliveries = chosen?.write.deliveries ?? [];
    const to = taker;
    if (!chosen || !to || deliveries.length === 0) return write(chosen?.write);
    const reserved = to.reserve(
      deliveries.map(({ webhookId }) => webhookId),
      chosen.write.event.body.length,
    );
    if (reserved === undefined) {
      return write(chosen.write).then((result) => {
        if (queued(result) > 0) to.untaken();
        return result;
      });
    }
    const { leaseUntil, taken } = reserved;
    const handed = deliveries.flatMap((delivery, i) =>
      taken.has(delivery.webhookId) ? [{ ...delivery, webhook: chosen.targets[i] as Webhook }] : [],
    );
    for (const { id } of handed) leases.set(id, { workerId: to.workerId, until: leaseUntil });
    const release = () => {
      for (const { id } of handed) {
        if (leases.get(id)?.workerId === to.workerId) leases.delete(id);
      }
    };
    return write(chosen.write).then(
      (result) => {
        const stored = queued(result);
        if (stored === deliveries.length && taker === to) {
          const { event } = chosen.write;
          to.take(
            handed.map(({ id, webhook }) => freshDelivery(id, webhook, event)),
            leaseUntil,
          );
          if (handed.length < deliveries.length) to.untaken();
        } else {
          release();
          if (stored > 0) to.untaken();
        }
        return result;
      },
      (error: unknown) => {
        release();
        throw error;
      },
    );
  }

  const webhookRow = (webhook: Webhook) => ({
    id: webhook.id,
    name: webhook.name,
    url: webhook.url,
    events: JSON.stringify(webhook.events),
    secret: webhook.secret,
    active: webhook.active ? 1 : 0,
    created_at: webhook.createdAt,
    updated_at: webhook.updatedAt,
  });

  /**
   * The ids of the deliveries due first among webhooks not skipped, not held. Skipped webhooks are
   * those at their share, whose backlog (a slow receiver's) fills the front of the due-time order:
   * instead of passing over all of it, each other webhook with work is read from its own index.
   */
  function dueIdsSkipping(
    now: number,
    limit: number,
    skipWebhooks: readonly string[],
    held: Set<string>,
  ): string[] {
    const found: Array<{ id: string; at: number }> = [];
    for (const { id: webhookId } of q.webhooksDue.all(JSON.stringify(skipWebhooks), now)) {
      // Reads further while the rows this process already holds fill what was read.
      for (let take = limit; ; take *= 2) {
        const rows = q.dueIdsOf.all(webhookId, now, take);
        const free = rows.filter((row) => !held.has(row.id));
        if (free.length >= limit || rows.length < take) {
          found.push(...free.slice(0, limit));
          break;
        }
      }
    }
    found.sort((a, b) => a.at - b.at);
    return found.slice(0, limit).map((row) => row.id);
  }

  let closed = false;

  return {
    async insertWebhook(webhook) {
      await afterWebhookWrite(writer.write({ kind: "insertWebhook", row: webhookRow(webhook) }));
    },

    async getWebhook(id) {
      const row = q.getWebhook.get(id);
      return row ? toWebhook(row) : undefined;
    },

    async listWebhooks() {
      return q.listWebhooks.all().map(toWebhook);
    },

    async pageWebhooks({ limit, cursor }) {
      const after = cursor === undefined ? undefined : decodeWebhookCursor(cursor);
      const rows = after
        ? q.webhooksAfter.all(after.createdAt, after.id, limit + 1)
        : q.webhooksFirst.all(limit + 1);
      return pageOfWebhooks(rows.map(toWebhook), limit);
    },

    updateWebhook: (webhook) =>
      afterWebhookWrite(writer.write<boolean>({ kind: "updateWebhook", row: webhookRow(webhook) })),

    async deleteWebhook(id) {
      // A long history is deleted in slices, each a write of its own, so that triggers and attempt
      // records commit in between instead of waiting for all of it; the webhook row goes last and
      // takes, by cascade, the deliveries queued meanwhile. A crash midway leaves the webhook, with
      // part of its history, for the delete to be asked again.
      const newest = q.newestDeliverySeq.get(id)?.seq;
      if (newest != null) {
        const slice = { kind: "deleteDeliverySlice", webhookId: id, throughSeq: newest } as const;
        while ((await writer.write<number>({ ...slice, limit: DELETE_SLICE })) === DELETE_SLICE);
      }
      return afterWebhookWrite(writer.write<boolean>({ kind: "deleteWebhook", id }));
    },

    enqueueEvent: (event, selectTargets, newDeliveryId) =>
      writeHandingOver(
        outgoingWrite({ event, selectTargets, newDeliveryId }),
        (outgoing) =>
          writer.write<number>({ kind: "outgoing", outgoing: outgoing as OutgoingWrite }),
        (queued) => queued,
      ),

    setLocalTaker(next) {
      taker = next;
    },

    async releaseLeases(held, workerId) {
      for (const { id, leaseUntil } of held) {
        const lease = leases.get(id);
        if (lease?.workerId === workerId && lease.until === leaseUntil) leases.delete(id);
      }
    },

    async claimDueDeliveries({ now, limit, workerId, leaseUntil, skipWebhooks = [] }) {
      const held: string[] = [];
      for (const [id, lease] of leases) if (lease.until > now) held.push(id);
      const ids =
        skipWebhooks.length === 0
          ? q.dueIds.all(now, JSON.stringify(held), "[]", limit).map((row) => row.id)
          : dueIdsSkipping(now, limit, skipWebhooks, new Set(held));
      if (ids.length === 0) return [];
      const claimed = q.claimRows.all(JSON.stringify(ids)).map(toClaimedDelivery);
      for (const delivery of claimed) leases.set(delivery.id, { workerId, until: leaseUntil });
      return claimed;
    },

    async recordAttempt(update: DeliveryUpdate, workerId: string, leaseUntil?: number) {
      // Only the lease holder moves the delivery on; a stale worker's attempt is kept in the history.
      const lease = leases.get(update.deliveryId);
      const holdsLease =
        lease?.workerId === workerId && (leaseUntil === undefined || lease.until === leaseUntil);
      try {
        await writer.writeLazily({
          kind: "attempt",
          columns: attemptColumns(update),
          moveDelivery: holdsLease,
        });
      } finally {
        if (holdsLease) leases.delete(update.deliveryId);
      }
    },

    // Leases live in this process's memory: they end with it, and a restart finds none.
    markWorkerAlive: async () => {},

    async releaseExpiredLeases(now) {
      let released = 0;
      for (const [id, lease] of leases) {
        if (lease.until <= now) {
          leases.delete(id);
          released++;
        }
      }
      return { expired: released, ofDeadWorkers: 0, deadWorkers: [] };
    },

    async nextDueAt(after) {
      return q.nextDue.get(after)?.at;
    },

    async countPendingDeliveries(now) {
      const counts = q.pendingCounts.get(now, now);
      return { due: counts?.due ?? 0, later: counts?.later ?? 0, held: 0 };
    },

    async listDeliveries(webhookId, { limit, cursor, status }): Promise<DeliveryPage> {
      const statement = historyPage(status);
      // Read row by row, so that a page cut short by its payload reads no further.
      const rows = statement.iterate(
        webhookId,
        cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor, webhookId),
        limit + 1,
      );
      const { page, more } = cutPage(rows, limit);
      const last = page[page.length - 1];
      return {
        deliveries: page.map(toDeliverySummary),
        nextCursor: more && last ? encodeCursor(last.seq, webhookId) : undefined,
      };
    },

    async requeueDelivery(webhookId, deliveryId, now) {
      const op = { kind: "requeueDelivery" as const, id: deliveryId, webhookId, now };
      if (await writer.write<boolean>(op)) return "requeued";
      return q.getDelivery.get(deliveryId, webhookId) ? "pending" : "not_found";
    },

    async ping() {
      q.ping.get();
    },

    async bringDeliveryForward(webhookId, deliveryId, now) {
      // A leased delivery is being sent. One that is not cannot become leased before the update:
      // only a due delivery is claimed, and this one is due only once the update is committed.
      const lease = leases.get(deliveryId);
      if (lease && lease.until > now) return false;
      const op = { kind: "bringDeliveryForward" as const, id: deliveryId, webhookId, now };
      return writer.write<boolean>(op);
    },

    async getDelivery(webhookId, deliveryId): Promise<DeliveryDetail | undefined> {
      const row = q.getDelivery.get(deliveryId, webhookId);
      if (!row) return undefined;
      return {
        ...toDeliverySummary(row),
        attemptLog: toAttemptLog(row, q.attempts.all(deliveryId)),
      };
    },

    async getEvent(id) {
      const row = q.getEvent.get(id);
      return row ? toOutgoingEvent(row) : undefined;
    },

    async routedEvents(incomingEventId, limit) {
      return q.routedEvents.all(incomingEventId, limit).map(toRoutedEvent);
    },

    saveIncoming: (event: IncomingEvent, route?: PendingEvent) =>
      writeHandingOver(
        route ? outgoingWrite(route) : undefined,
        (outgoing) =>
          writer.write<{ eventId: string; duplicate: boolean; deliveries: number }>({
            kind: "incoming",
            row: incomingParams(event),
            outgoing,
          }),
        (result) => result.deliveries,
      ),

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
      writeHandingOver(
        route ? outgoingWrite(route) : undefined,
        (outgoing) =>
          writer.write<number>({
            kind: "routing",
            id,
            status: outcome.status,
            outgoingEventId: outcome.outgoingEventId,
            routeError: outcome.routeError,
            outgoing,
          }),
        (queued) => queued,
      ),

    async insertSource(source) {
      await writer.write({ kind: "insertSource", columns: sourceColumns(source) });
    },

    async saveSource(source) {
      await writer.write({ kind: "saveSource", columns: sourceColumns(source) });
    },

    async getSource(name) {
      const row = q.getSource.get(name);
      return row ? toSource(row) : undefined;
    },

    async listSources() {
      return q.listSources.all().map(toSource);
    },

    deleteSource: (name) => writer.write<boolean>({ kind: "deleteSource", name }),

    async close() {
      if (closed) return;
      closed = true;
      await writer.close();
      db.close();
      owner.close();
    },
  };
}
