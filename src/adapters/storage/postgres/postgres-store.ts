/**
 * The scale-out store: one PostgreSQL database shared by any number of Herald processes.
 * Workers claim due deliveries with FOR UPDATE SKIP LOCKED and hold a lease (locked_by,
 * locked_until); an expired lease makes the row claimable again. Trigger, ingest and attempt
 * writes go through group commit with multi-row statements. A committed trigger sends
 * NOTIFY herald_deliveries so idle workers wake at once.
 * The statements on those paths are named (prepared): each connection parses and plans them once,
 * where planning a batch statement cost the database about as much as running it. They name their
 * columns, so a migration that adds a column never changes a cached statement's result.
 * Limits: times are taken from each process's clock, so keep the machines' clocks in sync (NTP).
 */
import pg from "pg";
import {
  type ClaimedDelivery,
  type DeliveryDetail,
  type DeliveryPage,
  type DeliveryUpdate,
  DUE_SOON_MS,
  freshDelivery,
} from "../../../domain/deliveries.js";
import { addToGroup } from "../../../domain/grouping.js";
import type { IncomingEvent } from "../../../domain/incoming.js";
import type {
  HeldLease,
  LocalDeliveryTaker,
  Logger,
  PendingEvent,
  Store,
} from "../../../domain/ports.js";
import { BatchQueue } from "../batch-queue.js";
import { decodeCursor, decodeWebhookCursor, encodeCursor } from "../cursor.js";
import { committing, storageOutage } from "../outage.js";
import {
  type AttemptRow,
  type ClaimRow,
  cutPage,
  DELIVERY_COLUMNS,
  type DeliveryRow,
  type EventRow,
  type IncomingRow,
  PAGE_PAYLOAD_LIMIT,
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
import { schemaAheadNotice, schemaUpgradeNotice } from "../schema-version.js";
import { answeredWithin } from "./answered-within.js";
import { describeOutage, type HeldSession } from "./held-session.js";
import { migratePostgres } from "./migrations.js";
import { startTableUpkeep } from "./table-upkeep.js";
import {
  type HandedOver,
  type HandoverReceiver,
  handoverNotices,
  listenToWorkerRooms,
  receiveHandovers,
  type WorkerRooms,
} from "./worker-handover.js";
import {
  DEAD_WORKERS,
  HOLDS_LOCK,
  holdWorkerLiveness,
  NOTE_MISSING_WORKERS,
  WORKER_GRACE_MS,
} from "./worker-liveness.js";

/** The channel a committed trigger notifies. */
export const DELIVERY_CHANNEL = "herald_deliveries";

/** The payload on DELIVERY_CHANNEL that says webhook `id` changed or was deleted. */
export function webhookChangeNotice(id: string): string {
  return `webhook ${id} changed`;
}

/** The webhook a DELIVERY_CHANNEL payload says changed, if it says so. */
export function changedWebhookOf(payload: string | undefined): string | undefined {
  return /^webhook (\S+) changed$/.exec(payload ?? "")?.[1];
}

const INT8_OID = 20;

export interface PostgresStoreOptions {
  url: string;
  /** Connections in the pool. */
  poolSize: number;
  /** Schema to use instead of the default search path (tests give each suite its own). */
  schema?: string;
  /** Run migrations before use (default true). */
  migrate?: boolean;
  /** Told when the connection that shows this process's workers alive is lost. */
  logger?: Logger;
  /** How long a statement may wait for its answer (default STATEMENT_ANSWER_TIMEOUT_MS). */
  answerTimeoutMs?: number;
  /** How often to check whether Herald's tables need a vacuum, when autovacuum is off. */
  upkeepIntervalMs?: number;
  /**
   * Lease new deliveries to workers in other processes that tell their room (for a process with
   * no worker of its own: the `api` role), instead of leaving them all to be claimed.
   */
  handOverToWorkers?: boolean;
  /** With handOverToWorkers: how long no worker may be heard before a warning (default 30 s). */
  noWorkerWarningMs?: number;
}

const UPKEEP_INTERVAL_MS = 10_000;

/**
 * How long an attempt's record waits for others to share its statement and commit. Below
 * saturation most records would otherwise go out alone: at 2,000 deliveries a second this cut the
 * database server's CPU per delivery by a quarter. The SQLite writer waits as long.
 */
const RECORD_LINGER_MS = 10;

/**
 * The claim's fresh rows (nobody holds them): the oldest due, read in due order from the index of
 * claimable rows. Parameters: $1 now, $2 limit.
 */
const FRESH_OLDEST_DUE = `fresh AS (
           SELECT d.seq, d.next_attempt_at FROM deliveries d
           JOIN webhooks w ON w.id = d.webhook_id AND w.active
           WHERE d.status = 'pending' AND d.locked_by IS NULL AND d.next_attempt_at <= $1
           ORDER BY d.next_attempt_at
           LIMIT $2
           FOR UPDATE OF d SKIP LOCKED
         )`;

/**
 * The same, less the webhooks in $5 (a slow receiver's, whose backlog is the oldest due): read
 * from each other webhook's own index, so the skipped backlog is never walked. Only the $2 webhooks
 * whose oldest due row comes first can hold the $2 oldest rows; twice $2 rows are read, so that a
 * claim still gets its fill when another worker locks some of them first.
 */
const FRESH_OF_OTHER_WEBHOOKS = `heads AS (
           SELECT w.id, h.at FROM webhooks w
           CROSS JOIN LATERAL (
             SELECT d.next_attempt_at AS at FROM deliveries d
             WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.locked_by IS NULL
               AND d.next_attempt_at <= $1
             ORDER BY d.next_attempt_at LIMIT 1
           ) h
           WHERE w.active AND w.id <> ALL($5::text[])
           ORDER BY h.at
           LIMIT $2
         ), picked AS (
           SELECT p.seq, p.next_attempt_at FROM heads
           CROSS JOIN LATERAL (
             SELECT d.seq, d.next_attempt_at FROM deliveries d
             WHERE d.webhook_id = heads.id AND d.status = 'pending' AND d.locked_by IS NULL
               AND d.next_attempt_at <= $1
             ORDER BY d.next_attempt_at LIMIT $2 * 2
           ) p
           ORDER BY p.next_attempt_at
           LIMIT $2 * 2
         ), fresh AS (
           SELECT d.seq, d.next_attempt_at FROM picked
           JOIN deliveries d ON d.seq = picked.seq
           WHERE d.status = 'pending' AND d.locked_by IS NULL
           ORDER BY picked.next_attempt_at
           LIMIT $2
           FOR UPDATE OF d SKIP LOCKED
         )`;

interface IncomingItem {
  event: IncomingEvent;
  route: PendingEvent | undefined;
}

interface RecordItem {
  update: DeliveryUpdate;
  workerId: string;
  leaseUntil: number | undefined;
}

/**
 * Herald's rows are read by key from a hot cache, where an index probe costs about what a
 * sequential page read does. With the default cost of 4, a batch of attempts on a table of some ten
 * thousand deliveries was joined by scanning the whole table: four times the server's work.
 */
const SESSION_SETTINGS = [
  "-c random_page_cost=1.1",
  // The server probes an idle session after 30 s and drops it a minute later when no answer comes,
  // so the liveness lock of a worker whose host vanished is not held for the kernel's two hours.
  "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
].join(" ");

/**
 * How long a connection may take to open, and a statement to answer, before Herald gives up on it:
 * a database host that vanishes or a network that drops packets without closing anything would
 * otherwise hold requests for as long as the kernel keeps retrying (many minutes). A connection
 * whose statement timed out is closed, never reused.
 */
export const CONNECT_TIMEOUT_MS = 10_000;
export const STATEMENT_ANSWER_TIMEOUT_MS = 30_000;
/** For statements whose work grows with the data (deleting a webhook's whole history). */
const LONG_STATEMENT_TIMEOUT_MS = 10 * 60_000;

/**
 * Connection settings shared by the pool and the listener. Session settings travel in the startup
 * message (`options`), after any the URL gives, since node-postgres lets the URL's win.
 */
export function postgresClientConfig(
  options: Pick<PostgresStoreOptions, "url" | "schema">,
): pg.ClientConfig {
  const url = new URL(options.url);
  const given = url.searchParams.get("options");
  url.searchParams.delete("options");
  const settings = [given, options.schema ? `-c search_path=${options.schema}` : undefined]
    .filter((part): part is string => Boolean(part))
    .concat(SESSION_SETTINGS)
    .join(" ");
  return {
    connectionString: url.toString(),
    // bigint columns hold millisecond times, which fit a JS number exactly.
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format as "text")) as never,
    },
    options: settings,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // Idle connections (a LISTEN, a held lock) learn that the server is gone without a statement.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** True when `error` leaves a connection that must not be used again (lost, or a statement unanswered). */
function connectionBroken(error: unknown): boolean {
  return storageOutage(error) !== undefined;
}

/** A batch that failed for its data is written again item by item; one caught in an outage is not. */
function notAnOutage(error: unknown): boolean {
  return storageOutage(error) === undefined;
}

async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await work(client);
    // Until COMMIT is sent, a broken connection rolls the transaction back; from then, it may not.
    await committing(() => client.query("COMMIT"));
    return result;
  } catch (error) {
    // A connection that is gone or does not answer gets no ROLLBACK (it would wait as long again):
    // closing it ends the transaction on the server.
    if (connectionBroken(error)) broken = error as Error;
    else await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release(broken);
  }
}

/** Who new deliveries may be leased to: this process's worker, or workers elsewhere with room. */
interface Takers {
  local: LocalDeliveryTaker | undefined;
  remote: WorkerRooms | undefined;
}

/** Deliveries leased to the local worker inside a transaction, to hand over once it commits. */
interface Handoff {
  taker: LocalDeliveryTaker;
  deliveries: ClaimedDelivery[];
  leaseUntil: number;
}

/** What a write tells the local worker once it commits: what it leased to it, and what it left. */
class Handover {
  private readonly handoffs: Handoff[] = [];
  private leftTo: LocalDeliveryTaker | undefined;

  lease(handoff: Handoff): void {
    this.handoffs.push(handoff);
  }

  /** Deliveries were stored that `taker` did not take; they wait to be claimed. */
  left(taker: LocalDeliveryTaker): void {
    this.leftTo = taker;
  }

  /** Called once the write has committed. */
  committed(): void {
    for (const { taker, deliveries, leaseUntil } of this.handoffs)
      taker.take(deliveries, leaseUntil);
    this.leftTo?.untaken();
  }
}

/** A delivery leased to a worker in another process, as its notice names it. */
interface RemoteHandoff extends HandedOver {
  workerId: string;
}

/**
 * Stores outgoing events and their deliveries on `client`, in one statement (so it commits on its
 * own, or with the caller's transaction). A webhook deleted or paused since it was chosen gets no
 * delivery. When `taker` has room, an event's deliveries are stored already leased to it; `handover`
 * keeps them, and whether any were left unleased, for the caller to tell the taker after the commit.
 */
async function insertOutgoing(
  client: pg.PoolClient,
  items: PendingEvent[],
  takers: Takers,
  handover: Handover,
  insideTransaction: boolean,
): Promise<number[]> {
  const { local: taker, remote } = takers;
  if (items.length === 0) return [];
  const { rows } = await client.query<WebhookRow>({
    name: "herald_active_webhooks",
    text: "SELECT id, name, url, events, secret, active, created_at, updated_at FROM webhooks WHERE active",
  });
  const active = rows.map(toWebhook);
  const events = {
    id: [] as string[],
    type: [] as string[],
    body: [] as string[],
    at: [] as number[],
    incoming: [] as Array<string | null>,
  };
  const deliveries = {
    id: [] as string[],
    webhook: [] as string[],
    event: [] as string[],
    type: [] as string[],
    at: [] as number[],
    lockedBy: [] as Array<string | null>,
    lockedUntil: [] as Array<number | null>,
  };
  /** Which item each delivery belongs to, by delivery id. */
  const itemOf = new Map<string, number>();
  const leased: Handoff[] = [];
  /** Deliveries leased to a worker in another process, with that worker, by delivery id. */
  const remoteOf = new Map<string, RemoteHandoff>();
  items.forEach(({ event, selectTargets, newDeliveryId }, item) => {
    events.id.push(event.id);
    events.type.push(event.type);
    events.body.push(event.body);
    events.at.push(event.createdAt);
    events.incoming.push(event.incomingEventId ?? null);
    const targets = selectTargets(active);
    const webhookIds = targets.map((webhook) => webhook.id);
    // This process's worker first; without one, a worker elsewhere that told its room.
    let reserved: { leaseUntil: number; taken: ReadonlySet<string> } | undefined;
    let holder: string | undefined;
    let carried = false;
    if (targets.length > 0 && taker) {
      reserved = taker.reserve(webhookIds, event.body.length);
      holder = taker.workerId;
    } else if (targets.length > 0 && remote) {
      const elsewhere = remote.reserve(webhookIds, event.body.length);
      reserved = elsewhere;
      holder = elsewhere?.workerId;
      carried = elsewhere?.carried ?? false;
    }
    const handed: ClaimedDelivery[] = [];
    for (const webhook of targets) {
      const leaseUntil = reserved?.taken.has(webhook.id) ? reserved.leaseUntil : undefined;
      const id = newDeliveryId();
      itemOf.set(id, item);
      deliveries.id.push(id);
      deliveries.webhook.push(webhook.id);
      deliveries.event.push(event.id);
      deliveries.type.push(event.type);
      deliveries.at.push(event.createdAt);
      deliveries.lockedBy.push(leaseUntil === undefined ? null : (holder ?? null));
      deliveries.lockedUntil.push(leaseUntil ?? null);
      if (leaseUntil === undefined) continue;
      if (taker) handed.push(freshDelivery(id, webhook, event));
      else if (holder !== undefined) {
        remoteOf.set(id, {
          workerId: holder,
          delivery: freshDelivery(id, webhook, event),
          leaseUntil,
          carried,
        });
      }
    }
    if (taker && reserved && handed.length > 0) {
      leased.push({ taker, deliveries: handed, leaseUntil: reserved.leaseUntil });
    }
  });
  // Workers are woken to claim what nobody holds, and told what was leased to them, by notices
  // the insert itself sends: PostgreSQL delivers them when it commits, so a process that dies
  // right after the commit cannot leave a worker holding leases it never heard of. They go only
  // if every delivery was stored (a webhook made inactive meanwhile stores none); otherwise the
  // notices for what was stored follow in a statement of their own.
  const intended = handoverNotices(groupedByWorker(remoteOf.values()));
  if (deliveries.lockedBy.includes(null)) {
    intended.channels.push(DELIVERY_CHANNEL);
    intended.payloads.push("");
  }
  // Outside a transaction this statement commits itself: once sent, a broken connection leaves it
  // perhaps stored.
  const insert = () =>
    client.query<{ id: string | null; locked: boolean | null }>({
      name: "herald_insert_outgoing",
      text: `WITH e AS (
       INSERT INTO events (id, type, body, created_at, incoming_event_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
     ), stored AS (
       INSERT INTO deliveries (id, webhook_id, event_id, event_type, status, attempts, next_attempt_at,
         created_at, updated_at, locked_by, locked_until)
       SELECT u.id, u.webhook_id, u.event_id, u.event_type, 'pending', 0, u.at, u.at, u.at, u.locked_by,
         u.locked_until
       FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::bigint[])
         AS u(id, webhook_id, event_id, event_type, at, locked_by, locked_until)
       JOIN webhooks w ON w.id = u.webhook_id AND w.active
       FOR KEY SHARE OF w
       RETURNING id, locked_by IS NOT NULL AS locked
     ), notified AS (
       SELECT pg_notify(n.channel, n.payload) FROM unnest($13::text[], $14::text[]) AS n(channel, payload)
       WHERE (SELECT count(*) FROM stored) = $15
     )
     SELECT id, locked FROM stored
     UNION ALL
     -- The count makes the notices go; its row is told apart by its null id.
     SELECT NULL, NULL FROM (SELECT count(*) FROM notified) AS sent`,
      values: [
        events.id,
        events.type,
        events.body,
        events.at,
        events.incoming,
        deliveries.id,
        deliveries.webhook,
        deliveries.event,
        deliveries.type,
        deliveries.at,
        deliveries.lockedBy,
        deliveries.lockedUntil,
        intended.channels,
        intended.payloads,
        deliveries.id.length,
      ],
    });
  const inserted = await (insideTransaction ? insert() : committing(insert));
  const counts = items.map(() => 0);
  const stored = new Set<string>();
  let unleased = 0;
  const handedOver = new Map<string, HandedOver[]>();
  for (const row of inserted.rows) {
    if (row.id === null) continue;
    stored.add(row.id);
    const item = itemOf.get(row.id) as number;
    counts[item] = (counts[item] ?? 0) + 1;
    if (!row.locked) unleased++;
    const remote = remoteOf.get(row.id);
    if (remote !== undefined) addToGroup(handedOver, remote.workerId, remote);
  }
  for (const handoff of leased) {
    const kept = handoff.deliveries.filter((delivery) => stored.has(delivery.id));
    if (kept.length > 0) handover.lease({ ...handoff, deliveries: kept });
  }
  if (unleased > 0 && taker) handover.left(taker);
  if (stored.size === deliveries.id.length) return counts;
  const notices = handoverNotices(handedOver);
  if (unleased > 0) {
    notices.channels.push(DELIVERY_CHANNEL);
    notices.payloads.push("");
  }
  if (notices.channels.length > 0) {
    const notify = client.query({
      name: "herald_notify",
      text: "SELECT pg_notify(n.channel, n.payload) FROM unnest($1::text[], $2::text[]) AS n(channel, payload)",
      values: [notices.channels, notices.payloads],
    });
    // Inside a transaction a failure must fail it; after an autocommit the rows are stored, and
    // idle workers find them on their next poll.
    if (insideTransaction) await notify;
    else await notify.catch(() => undefined);
  }
  return counts;
}

/** Deliveries handed to workers elsewhere, by worker, in the order they come. */
function groupedByWorker(handed: Iterable<RemoteHandoff>): Map<string, HandedOver[]> {
  const byWorker = new Map<string, HandedOver[]>();
  for (const remote of handed) addToGroup(byWorker, remote.workerId, remote);
  return byWorker;
}

/** Runs `work` on a pooled connection, outside any transaction. */
async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>) {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await work(client);
  } catch (error) {
    if (connectionBroken(error)) broken = error as Error;
    throw error;
  } finally {
    client.release(broken);
  }
}

async function writeAttempts(pool: pg.Pool, items: RecordItem[]): Promise<undefined[]> {
  const u = {
    id: [] as string[],
    status: [] as string[],
    attempts: [] as number[],
    next: [] as Array<number | null>,
    code: [] as Array<number | null>,
    body: [] as Array<string | null>,
    error: [] as Array<string | null>,
    started: [] as number[],
    duration: [] as number[],
    headers: [] as Array<string | null>,
    attempt: [] as number[],
    worker: [] as string[],
    lease: [] as Array<number | null>,
  };
  for (const { update, workerId, leaseUntil } of items) {
    const { attempt } = update;
    u.id.push(update.deliveryId);
    u.status.push(update.status);
    u.attempts.push(update.attempts);
    u.next.push(update.nextAttemptAt);
    u.code.push(attempt.statusCode);
    u.body.push(attempt.responseBody);
    u.error.push(attempt.error);
    u.started.push(attempt.startedAt);
    u.duration.push(attempt.durationMs);
    u.headers.push(attempt.responseHeaders ? JSON.stringify(attempt.responseHeaders) : null);
    u.attempt.push(attempt.attempt);
    u.worker.push(workerId);
    u.lease.push(leaseUntil ?? null);
  }
  // One statement, so one round trip and one commit. The latest attempt goes into the delivery's
  // row, and the one it held before moves to the attempts table (every sub-statement reads the rows
  // as they were before the statement). Only the lease holder moves the delivery on; a worker whose
  // lease ran out keeps its attempt in the history but leaves the delivery to whoever holds it now.
  // A delivery deleted in flight (with its webhook) has nowhere to keep its attempt.
  await pool.query({
    name: "herald_record_attempts_by_lease",
    text: `WITH u AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::int[], $6::text[],
                            $7::text[], $8::bigint[], $9::int[], $10::text[], $11::int[], $12::text[],
                            $13::bigint[])
         AS u(id, status, attempts, next_at, code, body, error, started, duration, worker, attempt, headers,
              lease)
     ), previous AS (
       INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error,
         response_headers, response_body)
       SELECT d.id, d.attempts, d.last_attempt_at, d.last_duration_ms, d.last_status_code, d.last_error,
         d.last_response_headers, d.last_response_body
       FROM u JOIN deliveries d ON d.id = u.id AND d.locked_by = u.worker
         AND (u.lease IS NULL OR d.locked_until = u.lease)
       WHERE u.attempt > 1 AND d.attempts > 0 AND d.last_duration_ms IS NOT NULL
       ON CONFLICT DO NOTHING
     ), moved AS (
       UPDATE deliveries d SET status = u.status, attempts = u.attempts, next_attempt_at = u.next_at,
         last_status_code = u.code, last_response_body = u.body, last_error = u.error,
         last_attempt_at = u.started, last_duration_ms = u.duration, last_response_headers = u.headers,
         updated_at = u.started + u.duration, locked_by = NULL, locked_until = NULL
       FROM u WHERE d.id = u.id AND d.locked_by = u.worker
         AND (u.lease IS NULL OR d.locked_until = u.lease)
       RETURNING d.id
     )
     INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error,
       response_headers, response_body)
     SELECT d.id, u.attempt, u.started, u.duration, u.code, u.error, u.headers, u.body
     FROM u JOIN deliveries d ON d.id = u.id
     WHERE NOT EXISTS (SELECT 1 FROM moved WHERE moved.id = u.id)
     ON CONFLICT DO NOTHING`,
    values: [
      u.id,
      u.status,
      u.attempts,
      u.next,
      u.code,
      u.body,
      u.error,
      u.started,
      u.duration,
      u.worker,
      u.attempt,
      u.headers,
      u.lease,
    ],
  });
  return items.map(() => undefined);
}

async function writeIncoming(
  pool: pg.Pool,
  items: IncomingItem[],
  takers: Takers,
): Promise<Array<{ eventId: string; duplicate: boolean; deliveries: number }>> {
  const handover = new Handover();
  const results = await inTransaction(pool, async (client) => {
    const events = items.map((item) => item.event);
    const inserted = await client.query<{ id: string }>({
      name: "herald_insert_incoming",
      text: `INSERT INTO incoming_events (id, service, event_name, dedupe_key, headers, raw_body, content_type,
         verified_by, verified, status, outgoing_event_id, route_error, received_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[],
         $7::text[], $8::text[], $9::boolean[], $10::text[], $11::text[], $12::text[], $13::bigint[])
       ON CONFLICT DO NOTHING
       RETURNING id`,
      values: [
        events.map((e) => e.id),
        events.map((e) => e.service),
        events.map((e) => e.eventName),
        events.map((e) => e.dedupeKey),
        events.map((e) => JSON.stringify(e.headers)),
        events.map((e) => e.rawBody),
        events.map((e) => e.contentType),
        events.map((e) => e.verifiedBy),
        events.map((e) => e.verified),
        events.map((e) => e.status),
        events.map((e) => e.outgoingEventId),
        events.map((e) => e.routeError),
        events.map((e) => e.receivedAt),
      ],
    });
    const stored = new Set(inserted.rows.map((row) => row.id));
    // Only a webhook stored for the first time is routed; a repeat is not routed again.
    const routed = items.filter((item) => item.route && stored.has(item.event.id));
    const counts = await insertOutgoing(
      client,
      routed.map((item) => item.route as PendingEvent),
      takers,
      handover,
      true,
    );
    const deliveriesOf = new Map(routed.map((item, i) => [item.event.id, counts[i] ?? 0]));
    const repeats = events.filter((e) => !stored.has(e.id) && e.dedupeKey !== null);
    const firstIds = new Map<string, string>();
    if (repeats.length > 0) {
      const { rows } = await client.query<{ service: string; dedupe_key: string; id: string }>(
        `SELECT i.service, i.dedupe_key, i.id FROM incoming_events i
         JOIN unnest($1::text[], $2::text[]) AS u(service, dedupe_key)
           ON i.service = u.service AND i.dedupe_key = u.dedupe_key`,
        [repeats.map((e) => e.service), repeats.map((e) => e.dedupeKey)],
      );
      for (const row of rows) firstIds.set(`${row.service}\u0000${row.dedupe_key}`, row.id);
    }
    return events.map((e) => {
      if (stored.has(e.id))
        return { eventId: e.id, duplicate: false, deliveries: deliveriesOf.get(e.id) ?? 0 };
      const first = firstIds.get(`${e.service}\u0000${e.dedupeKey}`);
      if (first === undefined)
        throw new Error(`incoming event ${e.id} was neither stored nor found`);
      return { eventId: first, duplicate: true, deliveries: 0 };
    });
  });
  handover.committed();
  return results;
}

/** DELIVERY_COLUMNS read from a page's rows, the body only while the page's payload fits. */
const PAGE_COLUMNS = DELIVERY_COLUMNS.replace(/\b[de]\./g, "p.").replace(
  "p.body",
  "CASE WHEN p.page_row = 1 OR p.page_payload <= $4 THEN p.body END AS body",
);

/** Opens the PostgreSQL store (running migrations unless told not to). */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const pool = new pg.Pool({
    ...postgresClientConfig(options),
    max: options.poolSize,
    query_timeout: options.answerTimeoutMs ?? STATEMENT_ANSWER_TIMEOUT_MS,
  });
  // A client losing its connection must not crash the process: while idle, the pool reports it
  // here and replaces it; while checked out, the pool listens no more, so every client gets a
  // listener of its own, and the query in flight fails with the error instead.
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  if (options.migrate !== false) {
    const migrated = await migratePostgres(pool);
    const ahead = schemaAheadNotice(migrated);
    if (ahead !== undefined) options.logger?.warn({}, ahead);
    const upgraded = schemaUpgradeNotice(migrated);
    if (upgraded !== undefined) options.logger?.info({}, upgraded);
  }
  const upkeep = await startTableUpkeep(
    pool,
    options.upkeepIntervalMs ?? UPKEEP_INTERVAL_MS,
    options.logger,
  );

  // Two batches in flight per kind of write: one commits while the next fills. More would split
  // the load into smaller batches, and each statement costs the database the same CPU whatever
  // its size.
  const flushes = Math.max(1, Math.min(2, Math.floor(options.poolSize / 3)));
  // Rooms are told per schema: the tables these sessions use are the ones the room is for.
  const { rows: where } = await pool.query<{ schema: string | null }>(
    "SELECT current_schema() AS schema",
  );
  const schema = where[0]?.schema ?? "";
  const rooms = options.handOverToWorkers
    ? await listenToWorkerRooms(
        postgresClientConfig(options),
        schema,
        options.logger,
        options.noWorkerWarningMs,
      )
    : undefined;
  const takers: Takers = { local: undefined, remote: rooms };
  /** Hands this process's worker the deliveries other processes lease to it. */
  let receiver: Promise<HandoverReceiver | undefined> | undefined;
  const enqueue = new BatchQueue<PendingEvent, number>({
    run: async (items) => {
      const handover = new Handover();
      const counts = await withClient(pool, (client) =>
        insertOutgoing(client, items, takers, handover, false),
      );
      handover.committed();
      return counts;
    },
    maxBatch: 500,
    maxInFlight: flushes,
    splitsAfter: notAnOutage,
  });
  const record = new BatchQueue<RecordItem, undefined>({
    run: (items) => writeAttempts(pool, items),
    maxBatch: 500,
    maxInFlight: flushes,
    splitsAfter: notAnOutage,
    // The delivery is sent already: only its history waits.
    lingerMs: RECORD_LINGER_MS,
  });
  const incoming = new BatchQueue<
    IncomingItem,
    { eventId: string; duplicate: boolean; deliveries: number }
  >({
    run: (items) => writeIncoming(pool, items, takers),
    maxBatch: 500,
    maxInFlight: flushes,
    splitsAfter: notAnOutage,
  });

  let closed = false;
  async function releaseLeases(held: HeldLease[], workerId: string): Promise<void> {
    if (held.length === 0) return;
    // Only a pending delivery is ever leased (recording an outcome clears the lease). Saying
    // `status = 'pending'` here would let the planner read every leased row through the index
    // of leases and hash them, instead of looking up the few given back by id.
    const freed = await pool.query(
      `UPDATE deliveries d SET locked_by = NULL, locked_until = NULL
       FROM unnest($1::text[], $2::bigint[]) AS l(id, until)
       WHERE d.id = l.id AND d.locked_until = l.until AND d.locked_by = $3`,
      [held.map((lease) => lease.id), held.map((lease) => lease.leaseUntil), workerId],
    );
    // Workers of other processes claim them now rather than on their next poll.
    if ((freed.rowCount ?? 0) > 0) await pool.query(`NOTIFY ${DELIVERY_CHANNEL}`);
  }
  const liveness: HeldSession[] = [];
  /** This process's workers: its own sweep never takes them for dead. */
  const ownWorkers: string[] = [];

  return {
    async insertWebhook(webhook) {
      await pool.query(
        `INSERT INTO webhooks (id, name, url, events, secret, active, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          webhook.id,
          webhook.name,
          webhook.url,
          JSON.stringify(webhook.events),
          webhook.secret,
          webhook.active,
          webhook.createdAt,
          webhook.updatedAt,
        ],
      );
    },

    async getWebhook(id) {
      const { rows } = await pool.query<WebhookRow>("SELECT * FROM webhooks WHERE id = $1", [id]);
      return rows[0] ? toWebhook(rows[0]) : undefined;
    },

    async listWebhooks() {
      const { rows } = await pool.query<WebhookRow>(
        "SELECT * FROM webhooks ORDER BY created_at, id",
      );
      return rows.map(toWebhook);
    },

    async pageWebhooks({ limit, cursor }) {
      const after = cursor === undefined ? undefined : decodeWebhookCursor(cursor);
      const { rows } = after
        ? await pool.query<WebhookRow>(
            `SELECT * FROM webhooks WHERE (created_at, id) > ($1, $2)
             ORDER BY created_at, id LIMIT $3`,
            [after.createdAt, after.id, limit + 1],
          )
        : await pool.query<WebhookRow>("SELECT * FROM webhooks ORDER BY created_at, id LIMIT $1", [
            limit + 1,
          ]);
      return pageOfWebhooks(rows.map(toWebhook), limit);
    },

    async updateWebhook(webhook) {
      // Whether the URL or the state changed, read from the row as it was (under its lock).
      const result = await pool.query<{ moved: boolean }>(
        `WITH before AS (SELECT id, url, active FROM webhooks WHERE id = $1 FOR UPDATE)
         UPDATE webhooks w SET name = $2, url = $3, events = $4, active = $5, updated_at = $6
         FROM before WHERE w.id = before.id
         RETURNING before.url <> $3 OR before.active <> $5 AS moved`,
        [
          webhook.id,
          webhook.name,
          webhook.url,
          JSON.stringify(webhook.events),
          webhook.active,
          webhook.updatedAt,
        ],
      );
      const updated = (result.rowCount ?? 0) > 0;
      if (result.rows[0]?.moved) {
        // Workers in every process give back what they hold for the webhook, to be claimed as it
        // now is (its new URL; nothing while inactive), and are woken for deliveries a paused
        // webhook held, instead of finding them at their next poll.
        await pool
          .query("SELECT pg_notify($1, $2)", [DELIVERY_CHANNEL, webhookChangeNotice(webhook.id)])
          .catch(() => undefined);
      }
      return updated;
    },

    async deleteWebhook(id) {
      // The webhook row goes first: its lock waits for batches still inserting deliveries for it
      // (they hold it FOR KEY SHARE), so the deletes after it see those deliveries too.
      return inTransaction(pool, async (client) => {
        const result = await client.query("DELETE FROM webhooks WHERE id = $1", [id]);
        if ((result.rowCount ?? 0) === 0) return false;
        // Told on commit: workers drop what they hold for it.
        await client.query("SELECT pg_notify($1, $2)", [DELIVERY_CHANNEL, webhookChangeNotice(id)]);
        await client.query(
          answeredWithin(
            LONG_STATEMENT_TIMEOUT_MS,
            `DELETE FROM delivery_attempts a USING deliveries d
             WHERE d.webhook_id = $1 AND a.delivery_id = d.id`,
            [id],
          ),
        );
        await client.query(
          answeredWithin(
            LONG_STATEMENT_TIMEOUT_MS,
            "DELETE FROM deliveries WHERE webhook_id = $1",
            [id],
          ),
        );
        return true;
      });
    },

    enqueueEvent: (event, selectTargets, newDeliveryId) =>
      enqueue.push({ event, selectTargets, newDeliveryId }),

    async claimDueDeliveries({
      now,
      limit,
      workerId,
      leaseUntil,
      skipWebhooks = [],
    }): Promise<ClaimedDelivery[]> {
      // The usual claim skips nothing, and its plan then carries no filter at all.
      const skipping = skipWebhooks.length > 0;
      const skippingFilter = skipping ? "AND d.webhook_id <> ALL($5::text[])" : "";
      const { rows } = await pool.query<ClaimRow>({
        name: skipping ? "herald_claim_skipping" : "herald_claim",
        text: `WITH ${skipping ? FRESH_OF_OTHER_WEBHOOKS : FRESH_OLDEST_DUE}, expired AS (
           -- Leases whose worker died; each kind of row has its own index, so neither scan passes
           -- over rows that are held.
           SELECT d.seq, d.next_attempt_at FROM deliveries d
           JOIN webhooks w ON w.id = d.webhook_id AND w.active
           WHERE d.status = 'pending' AND d.locked_by IS NOT NULL AND d.locked_until <= $1
             ${skippingFilter}
           ORDER BY d.locked_until
           LIMIT $2
           FOR UPDATE OF d SKIP LOCKED
         ), due AS (
           SELECT seq FROM (SELECT * FROM expired UNION ALL SELECT * FROM fresh) AS c
           ORDER BY next_attempt_at
           LIMIT $2
         ), claimed AS (
           UPDATE deliveries d SET locked_by = $3, locked_until = $4
           FROM due WHERE d.seq = due.seq
           RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.created_at, d.next_attempt_at
         )
         SELECT c.id, c.webhook_id, c.event_id, c.event_type, c.attempts, c.created_at, w.url, w.secret, e.body
         FROM claimed c JOIN webhooks w ON w.id = c.webhook_id JOIN events e ON e.id = c.event_id
         ORDER BY c.next_attempt_at`,
        values: skipping
          ? [now, limit, workerId, leaseUntil, skipWebhooks]
          : [now, limit, workerId, leaseUntil],
      });
      return rows.map(toClaimedDelivery);
    },

    ...(rooms ? { deliveryWorkersHeard: () => rooms.heard() } : {}),

    setLocalTaker(next) {
      takers.local = next;
      if (!next) {
        // Stopped, it still hears what was handed to it meanwhile, and gives that back.
        void receiver?.then((started) => started?.stop());
        return;
      }
      if (closed) return;
      // A worker that replaces a stopped one tells its own room and hears its own channel.
      const previous = receiver;
      void previous?.then((started) => started?.close());
      receiver = receiveHandovers({
        config: postgresClientConfig(options),
        schema,
        pool,
        taker: next,
        logger: options.logger,
        giveBack: releaseLeases,
      }).catch((error: unknown) => {
        // Without it the worker claims all its work, as a worker in an older version does.
        options.logger?.warn(
          { err: error },
          "Could not listen for deliveries handed to this worker; it claims all its work instead.",
        );
        return undefined;
      });
    },

    releaseLeases,

    async recordAttempt(update, workerId, leaseUntil) {
      await record.push({ update, workerId, leaseUntil });
    },

    async markWorkerAlive(workerId) {
      const held = await holdWorkerLiveness(
        postgresClientConfig(options),
        workerId,
        () => Date.now(),
        {
          lost: (error) =>
            options.logger?.warn(
              { err: error, workerId },
              "Lost the PostgreSQL connection that shows this worker is alive; reconnecting. Meanwhile other processes may send this worker's deliveries again; a line says when it is back.",
            ),
          restored: ({ downMs, losses }) =>
            options.logger?.info(
              { workerId, downMs, losses },
              `The PostgreSQL connection that shows this worker is alive is back, ${describeOutage(downMs, losses)}.`,
            ),
        },
      );
      liveness.push(held);
      ownWorkers.push(workerId);
    },

    releaseExpiredLeases: (now) =>
      // In one transaction, so a dead worker is forgotten only together with freeing its leases.
      inTransaction(pool, async (client) => {
        await client.query(NOTE_MISSING_WORKERS, [ownWorkers, now]);
        const { rows } = await client.query<{ id: string }>(DEAD_WORKERS, [
          ownWorkers,
          now - WORKER_GRACE_MS,
        ]);
        const dead = rows.map((row) => row.id);
        let ofDeadWorkers = 0;
        if (dead.length > 0) {
          const freed = await client.query(
            `UPDATE deliveries SET locked_by = NULL, locked_until = NULL
             WHERE status = 'pending' AND locked_by IS NOT NULL AND locked_by = ANY($1::text[])`,
            [dead],
          );
          ofDeadWorkers = freed.rowCount ?? 0;
        }
        const expired = await client.query(
          `UPDATE deliveries SET locked_by = NULL, locked_until = NULL
           WHERE status = 'pending' AND locked_by IS NOT NULL AND locked_until <= $1`,
          [now],
        );
        return { expired: expired.rowCount ?? 0, ofDeadWorkers, deadWorkers: dead };
      }),

    async nextDueAt(after) {
      // Walks the due-time index from `after`, so a long queue costs nothing here.
      const { rows } = await pool.query<{ at: number }>(
        `SELECT d.next_attempt_at AS at FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND d.locked_by IS NULL AND d.next_attempt_at > $1 AND w.active
         ORDER BY d.next_attempt_at LIMIT 1`,
        [after],
      );
      return rows[0]?.at;
    },

    async countPendingDeliveries(now) {
      // A delivery never tried is due whatever its time; leases of running workers are theirs.
      const { rows } = await pool.query<{ due: number; later: number; held: number }>(
        `WITH alive AS (SELECT w.id FROM herald_workers w WHERE ${HOLDS_LOCK})
         SELECT (count(*) FILTER (WHERE d.locked_by IS NULL
                   AND (d.next_attempt_at <= $1 OR d.attempts = 0)))::int AS due,
                (count(*) FILTER (WHERE d.locked_by IS NULL AND d.next_attempt_at > $1
                   AND d.attempts > 0))::int AS later,
                (count(*) FILTER (WHERE d.locked_by IS NOT NULL AND (d.locked_until <= $1
                   OR d.locked_by NOT IN (SELECT id FROM alive))))::int AS held
         FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND w.active`,
        [now],
      );
      return { due: rows[0]?.due ?? 0, later: rows[0]?.later ?? 0, held: rows[0]?.held ?? 0 };
    },

    async listDeliveries(webhookId, { limit, cursor, status }): Promise<DeliveryPage> {
      const after = cursor === undefined ? null : decodeCursor(cursor, webhookId);
      // Bodies past the page's payload limit stay on the server: those rows come without one.
      const { rows } = await pool.query<Omit<DeliveryRow, "body"> & { body: string | null }>(
        `SELECT ${PAGE_COLUMNS}
         FROM (
           SELECT ${DELIVERY_COLUMNS},
             row_number() OVER newest AS page_row,
             sum(octet_length(e.body)) OVER newest AS page_payload
           FROM deliveries d JOIN events e ON e.id = d.event_id
           WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.seq < $2)
             ${status ? STATUS_FILTER[status] : ""}
           WINDOW newest AS (ORDER BY d.seq DESC)
           ORDER BY d.seq DESC LIMIT $3
         ) p
         ORDER BY p.page_row`,
        [webhookId, after, limit + 1, PAGE_PAYLOAD_LIMIT],
      );
      const { page, more } = cutPage(rows, limit);
      const last = page[page.length - 1];
      return {
        deliveries: page.map(toDeliverySummary),
        nextCursor: more && last ? encodeCursor(last.seq, webhookId) : undefined,
      };
    },

    async requeueDelivery(webhookId, deliveryId, now) {
      // The latest attempt moves to the history, and the row keeps only what the receiver answered:
      // the attempt's error told what to do next, which no longer applies.
      const requeued = await pool.query(
        `WITH settled AS (
           SELECT id FROM deliveries WHERE id = $1 AND webhook_id = $2 AND status <> 'pending'
           FOR UPDATE
         ), kept AS (
           INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code,
             error, response_headers, response_body)
           SELECT d.id, d.attempts, d.last_attempt_at, d.last_duration_ms, d.last_status_code,
             d.last_error, d.last_response_headers, d.last_response_body
           FROM deliveries d JOIN settled USING (id)
           WHERE d.attempts > 0 AND d.last_duration_ms IS NOT NULL
           ON CONFLICT DO NOTHING
         )
         UPDATE deliveries d SET status = 'pending', next_attempt_at = $3, updated_at = $3,
           locked_by = NULL, locked_until = NULL, last_error = NULL, last_duration_ms = NULL
         FROM settled WHERE d.id = settled.id`,
        [deliveryId, webhookId, now],
      );
      if ((requeued.rowCount ?? 0) > 0) {
        // Wakes idle workers in every process, as a committed trigger does; without it they still
        // find the delivery at their next poll.
        await pool.query(`NOTIFY ${DELIVERY_CHANNEL}`).catch(() => undefined);
        return "requeued";
      }
      const { rowCount } = await pool.query(
        "SELECT 1 FROM deliveries WHERE id = $1 AND webhook_id = $2",
        [deliveryId, webhookId],
      );
      return (rowCount ?? 0) > 0 ? "pending" : "not_found";
    },

    async ping() {
      await pool.query("SELECT 1");
    },

    async bringDeliveryForward(webhookId, deliveryId, now) {
      // A leased delivery is being sent (or handed to a worker): it is left to its worker.
      const brought = await pool.query(
        `UPDATE deliveries SET next_attempt_at = $3, updated_at = $3
         WHERE id = $1 AND webhook_id = $2 AND status = 'pending' AND next_attempt_at > $4
           AND (locked_until IS NULL OR locked_until <= $3)`,
        [deliveryId, webhookId, now, now + DUE_SOON_MS],
      );
      if ((brought.rowCount ?? 0) === 0) return false;
      await pool.query(`NOTIFY ${DELIVERY_CHANNEL}`).catch(() => undefined);
      return true;
    },

    async getDelivery(webhookId, deliveryId): Promise<DeliveryDetail | undefined> {
      const { rows } = await pool.query<DeliveryRow>(
        `SELECT ${DELIVERY_COLUMNS} FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.id = $1 AND d.webhook_id = $2`,
        [deliveryId, webhookId],
      );
      const row = rows[0];
      if (!row) return undefined;
      const attempts = await pool.query<AttemptRow>(
        "SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, started_at",
        [deliveryId],
      );
      return { ...toDeliverySummary(row), attemptLog: toAttemptLog(row, attempts.rows) };
    },

    async getEvent(id) {
      const { rows } = await pool.query<EventRow>(
        "SELECT id, type, body, created_at, incoming_event_id FROM events WHERE id = $1",
        [id],
      );
      return rows[0] ? toOutgoingEvent(rows[0]) : undefined;
    },

    async routedEvents(incomingEventId, limit) {
      const { rows } = await pool.query<RoutedEventRow>(
        `SELECT id, type, created_at FROM events WHERE incoming_event_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2`,
        [incomingEventId, limit],
      );
      return rows.map(toRoutedEvent);
    },

    saveIncoming: (event, route) => incoming.push({ event, route }),

    async listIncoming({ source, status, since, until, limit, cursor }) {
      const { rows } = await pool.query<IncomingRow>(
        `SELECT * FROM incoming_events
         WHERE ($1::text IS NULL OR service = $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::bigint IS NULL OR received_at >= $3) AND ($4::bigint IS NULL OR received_at < $4)
           AND ($5::bigint IS NULL OR seq < $5)
         ORDER BY seq DESC LIMIT $6`,
        [
          source ?? null,
          status ?? null,
          since ?? null,
          until ?? null,
          cursor === undefined ? null : decodeCursor(cursor),
          limit + 1,
        ],
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        events: page.map(toIncomingEvent),
        nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : undefined,
      };
    },

    async getIncoming(id) {
      const { rows } = await pool.query<IncomingRow>(
        "SELECT * FROM incoming_events WHERE id = $1",
        [id],
      );
      return rows[0] ? toIncomingEvent(rows[0]) : undefined;
    },

    async recordRouting(id, outcome, route) {
      const handover = new Handover();
      const deliveries = await inTransaction(pool, async (client) => {
        await client.query(
          "UPDATE incoming_events SET status = $2, outgoing_event_id = $3, route_error = $4 WHERE id = $1",
          [id, outcome.status, outcome.outgoingEventId, outcome.routeError],
        );
        const [queued] = await insertOutgoing(client, route ? [route] : [], takers, handover, true);
        return queued ?? 0;
      });
      handover.committed();
      return deliveries;
    },

    async insertSource(source) {
      await pool.query(
        `INSERT INTO sources (name, verifier, secret, rules, settings, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        sourceColumns(source),
      );
    },

    async saveSource(source) {
      await pool.query(
        `INSERT INTO sources (name, verifier, secret, rules, settings, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (name) DO UPDATE SET verifier = excluded.verifier, secret = excluded.secret,
           rules = excluded.rules, settings = excluded.settings, updated_at = excluded.updated_at`,
        sourceColumns(source),
      );
    },

    async getSource(name) {
      const { rows } = await pool.query<SourceRow>("SELECT * FROM sources WHERE name = $1", [name]);
      return rows[0] ? toSource(rows[0]) : undefined;
    },

    async listSources() {
      const { rows } = await pool.query<SourceRow>("SELECT * FROM sources ORDER BY name");
      return rows.map(toSource);
    },

    deleteSource: (name) =>
      inTransaction(pool, async (client) => {
        const result = await client.query("DELETE FROM sources WHERE name = $1", [name]);
        if ((result.rowCount ?? 0) === 0) return false;
        await client.query(
          "UPDATE incoming_events SET dedupe_key = NULL WHERE service = $1 AND dedupe_key IS NOT NULL",
          [name],
        );
        return true;
      }),

    async close() {
      if (closed) return;
      closed = true;
      await Promise.all([enqueue.drain(), record.drain(), incoming.drain()]);
      // Signs off: a worker that holds no leases leaves no row for another process's sweep to take
      // for a dead worker's. One still holding some stays, and the sweep frees them.
      if (ownWorkers.length > 0) {
        await pool
          .query(
            `DELETE FROM herald_workers w WHERE w.id = ANY($1::text[]) AND NOT EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.status = 'pending' AND d.locked_by IS NOT NULL AND d.locked_by = w.id)`,
            [ownWorkers],
          )
          .catch(() => undefined);
      }
      const started = await receiver;
      await Promise.all([
        ...liveness.map((held) => held.close()),
        upkeep?.stop(),
        started?.close(),
        rooms?.close(),
      ]);
      await pool.end();
    },
  };
}
