/**
 * New deliveries handed to delivery workers in other processes. A process that delivers nothing
 * itself (the `api` role) would store its deliveries for workers to claim, and a claim rewrites
 * every row it takes, with every index entry: the most costly statement a delivery meets. Instead,
 * workers tell their room on their schema's room channel a few times a second; the api process
 * stores a new event's deliveries already leased to a worker with room, and names them on that
 * worker's own channel once they are committed, carried whole in the notice but for the webhook's
 * secret, which the worker reads once per webhook. It sends them without reading their rows.
 *
 * Nothing depends on a notice arriving. A worker gives back what it has no room for (two api
 * processes may both spend the same room). Deliveries whose notice was lost (the worker's session
 * dropped) stay leased until their lease runs out, or until the worker is found dead, and are then
 * claimed like any others.
 */
import { createHash } from "node:crypto";
import type pg from "pg";
import type { ClaimedDelivery } from "../../../domain/deliveries.js";
import { addToGroup, consecutiveRuns } from "../../../domain/grouping.js";
import type { HeldLease, LocalDeliveryTaker, Logger, WorkerRoom } from "../../../domain/ports.js";
import { storeFailureAdvice } from "../outage.js";
import { type ClaimRow, toClaimedDelivery } from "../rows.js";
import { holdSession, sessionLines } from "./held-session.js";

/**
 * The channel workers tell their room on: one per schema, since a channel is shared by the whole
 * database, and two Herald installations in two schemas of one database must not lease
 * deliveries to each other's workers.
 */
export function roomChannel(schema: string): string {
  return `herald_worker_room_${createHash("sha256").update(schema).digest("hex").slice(0, 24)}`;
}

/** How often a worker looks at its room, and tells it when it changed. */
const ROOM_CHECK_MS = 25;
/** Most webhook secrets a worker keeps from the deliveries handed to it; past it, it starts over. */
const SECRETS_KEPT = 10_000;
/** A worker tells its room at least this often, changed or not. */
const ROOM_REPEAT_MS = 1_000;
/** A room not told again within this long is forgotten: its worker may have stopped. */
const ROOM_FRESH_MS = 2_500;
/** A notice's payload is at most 8,000 bytes; ids are ASCII. */
const NOTICE_BYTES = 7_900;

/** The channel that names the deliveries handed to `workerId`. */
export function handoverChannel(workerId: string): string {
  return `herald_handover_${createHash("sha256").update(workerId).digest("hex").slice(0, 24)}`;
}

/** A room as told on a room channel. */
interface RoomNotice {
  worker: string;
  room: WorkerRoom;
  /** True from a worker that takes deliveries carried whole; one of an earlier release reads ids. */
  carried?: boolean;
}

function parseRoomNotice(payload: string | undefined): RoomNotice | undefined {
  try {
    const notice = JSON.parse(payload ?? "") as Partial<RoomNotice>;
    const room = notice.room;
    if (
      typeof notice.worker !== "string" ||
      !room ||
      !Number.isFinite(room.deliveries) ||
      !Number.isFinite(room.bodyLength) ||
      !Number.isFinite(room.leaseMs) ||
      !Array.isArray(room.fullWebhooks)
    ) {
      return undefined;
    }
    return notice as RoomNotice;
  } catch {
    return undefined;
  }
}

/** Where an event's deliveries go: the worker, their lease, and the webhooks it takes. */
export interface RemoteReservation {
  workerId: string;
  /** Whether the worker takes deliveries carried whole in a notice, or only named by id. */
  carried: boolean;
  leaseUntil: number;
  taken: ReadonlySet<string>;
}

/** The api side: the rooms workers last told, spent as deliveries are leased to them. */
export interface WorkerRooms {
  /** A worker with room for one event's deliveries, or undefined (they wait to be claimed). */
  reserve(webhookIds: readonly string[], bodyLength: number): RemoteReservation | undefined;
  /** How many workers told their room lately (within 2.5 s), full ones included. */
  heard(): number;
  close(): Promise<void>;
}

interface HeardRoom {
  deliveries: number;
  bodyLength: number;
  leaseMs: number;
  full: Set<string>;
  heardAt: number;
  carried: boolean;
}

/** How long an api process hears from no worker before it says nothing is being delivered. */
export const NO_WORKER_WARNING_MS = 30_000;
/** How often that line repeats while no worker is heard. */
const NO_WORKER_REPEAT_MS = 10 * 60_000;

/**
 * Listens on the room channel of `schema`; resolves once listening. Every delivering process tells
 * its room at least once a second, so an api process that hears none for `noWorkerWarningMs` says
 * that what it stores is not being delivered, and says so again when a worker is heard.
 */
export async function listenToWorkerRooms(
  config: pg.ClientConfig,
  schema: string,
  logger: Logger | undefined,
  noWorkerWarningMs = NO_WORKER_WARNING_MS,
): Promise<WorkerRooms> {
  const channel = roomChannel(schema);
  const rooms = new Map<string, HeardRoom>();
  let lastHeard = Date.now();
  let warnedAt: number | undefined;
  const session = await holdSession(
    config,
    async (client) => {
      client.on("notification", (message) => {
        if (message.channel !== channel) return;
        const notice = parseRoomNotice(message.payload);
        if (!notice) return;
        lastHeard = Date.now();
        if (warnedAt !== undefined) {
          warnedAt = undefined;
          logger?.info(
            { worker: notice.worker },
            `A delivery worker is running again (${notice.worker}): stored deliveries are being sent.`,
          );
        }
        const { room } = notice;
        rooms.set(notice.worker, {
          deliveries: room.deliveries,
          bodyLength: room.bodyLength,
          leaseMs: room.leaseMs,
          full: new Set(room.fullWebhooks),
          heardAt: Date.now(),
          carried: notice.carried === true,
        });
      });
      await client.query(`LISTEN ${channel}`);
    },
    sessionLines(
      logger,
      "hears which delivery workers have room",
      "New deliveries wait for workers to claim them meanwhile",
      () => rooms.clear(),
    ),
  );
  // Watched once listening: a failed start leaves no timer behind.
  const watch = setInterval(
    () => {
      const now = Date.now();
      const silent = now - lastHeard;
      if (silent < noWorkerWarningMs) return;
      if (warnedAt !== undefined && now - warnedAt < NO_WORKER_REPEAT_MS) return;
      warnedAt = now;
      logger?.warn(
        { silentMs: silent },
        `No delivery worker has been heard from for ${Math.round(silent / 1000)} s on this database (schema ${schema}). This api process still accepts triggers and incoming webhooks and stores them, but nothing is delivered until a process with HERALD_ROLE=worker (or all) runs with the same DATABASE_URL. This line repeats every ${NO_WORKER_REPEAT_MS / 60_000} min while none is heard.`,
      );
    },
    Math.min(5_000, Math.max(50, noWorkerWarningMs / 2)),
  );
  watch.unref();
  return {
    reserve(webhookIds, bodyLength) {
      const now = Date.now();
      let bestId: string | undefined;
      let best: HeardRoom | undefined;
      for (const [workerId, room] of rooms) {
        if (now - room.heardAt > ROOM_FRESH_MS) {
          rooms.delete(workerId);
          continue;
        }
        if (!best || room.deliveries > best.deliveries) {
          best = room;
          bestId = workerId;
        }
      }
      if (!best || bestId === undefined) return undefined;
      const taken = new Set(webhookIds.filter((id) => !best.full.has(id)));
      if (taken.size === 0 || taken.size > best.deliveries || bodyLength > best.bodyLength) {
        return undefined;
      }
      best.deliveries -= taken.size;
      best.bodyLength -= bodyLength;
      return { workerId: bestId, carried: best.carried, leaseUntil: now + best.leaseMs, taken };
    },
    heard() {
      const now = Date.now();
      let fresh = 0;
      for (const room of rooms.values()) if (now - room.heardAt <= ROOM_FRESH_MS) fresh++;
      return fresh;
    },
    close: () => {
      clearInterval(watch);
      return session.close();
    },
  };
}

/** The notices that name deliveries handed to workers: channel and payload, side by side. */
export interface HandoverNotices {
  channels: string[];
  payloads: string[];
}

/** A delivery committed already leased to a worker in another process, until `leaseUntil`. */
export interface HandedOver {
  delivery: ClaimedDelivery;
  leaseUntil: number;
  /** Whether the worker takes it carried whole in a notice, or only named by id. */
  carried: boolean;
}

/**
 * A notice carrying deliveries whole, but for their webhooks' secrets, which a worker reads once
 * per webhook: `w` maps each webhook to its URL; each event of `e` has its lease (`l`), id (`i`),
 * type (`t`), creation time (`c`), body (`b`) and its deliveries as [delivery id, webhook id].
 * An event too large for a notice is named by its delivery ids alone, comma-separated, and read.
 */
interface CarriedNotice {
  w: Record<string, string>;
  e: CarriedEvent[];
}

interface CarriedEvent {
  l: number;
  i: string;
  t: string;
  c: number;
  b: string;
  d: Array<[string, string]>;
}

/**
 * A carried notice as it is filled: its parts are serialized once, as they are added, and joined
 * when it is sent, so its size is known exactly without serializing a body twice.
 */
class CarriedNoticeText {
  private readonly urls: string[] = [];
  private readonly named = new Set<string>();
  private readonly events: string[] = [];
  /** Bytes of `{"w":{},"e":[]}` and of what was added, with its commas. */
  private bytes = 15;

  get empty(): boolean {
    return this.events.length === 0;
  }

  /** The bytes adding `event` would take, with the URLs of its webhooks this notice lacks. */
  cost(event: string, urls: Map<string, string>): number {
    let bytes = Buffer.byteLength(event) + 1;
    for (const [webhookId, url] of urls) {
      if (!this.named.has(webhookId)) bytes += Buffer.byteLength(urlEntry(webhookId, url)) + 1;
    }
    return bytes;
  }

  fits(event: string, urls: Map<string, string>): boolean {
    return this.bytes + this.cost(event, urls) <= NOTICE_BYTES;
  }

  add(event: string, urls: Map<string, string>): void {
    this.bytes += this.cost(event, urls);
    for (const [webhookId, url] of urls) {
      if (this.named.has(webhookId)) continue;
      this.named.add(webhookId);
      this.urls.push(urlEntry(webhookId, url));
    }
    this.events.push(event);
  }

  toString(): string {
    return `{"w":{${this.urls.join(",")}},"e":[${this.events.join(",")}]}`;
  }
}

const urlEntry = (webhookId: string, url: string) =>
  `${JSON.stringify(webhookId)}:${JSON.stringify(url)}`;

/** Notices handing over `handed` (committed, leased to their worker), by worker, each within 7,900 bytes. */
export function handoverNotices(byWorker: Map<string, HandedOver[]>): HandoverNotices {
  const notices: HandoverNotices = { channels: [], payloads: [] };
  for (const [workerId, handed] of byWorker) {
    const channel = handoverChannel(workerId);
    const send = (payload: string) => {
      notices.channels.push(channel);
      notices.payloads.push(payload);
    };
    let carried = new CarriedNoticeText();
    /** Deliveries named by id: too large to carry, or for a worker that reads them by id. */
    const byId: string[] = [];
    // An event's deliveries come together, with one lease.
    const sameEventAndLease = (a: HandedOver, b: HandedOver) =>
      a.delivery.eventId === b.delivery.eventId && a.leaseUntil === b.leaseUntil;
    for (const group of consecutiveRuns(handed, sameEventAndLease)) {
      const first = group[0] as HandedOver;
      if (!first.carried) {
        for (const { delivery } of group) byId.push(delivery.id);
        continue;
      }
      const { delivery } = first;
      const event = JSON.stringify({
        l: first.leaseUntil,
        i: delivery.eventId,
        t: delivery.eventType,
        c: delivery.createdAt,
        b: delivery.body,
        d: group.map(({ delivery: d }) => [d.id, d.webhookId]),
      } satisfies CarriedEvent);
      const urls = new Map(group.map(({ delivery: d }) => [d.webhookId, d.url]));
      if (!carried.fits(event, urls)) {
        const next = new CarriedNoticeText();
        if (!next.fits(event, urls)) {
          for (const { delivery: d } of group) byId.push(d.id);
          continue;
        }
        if (!carried.empty) send(carried.toString());
        carried = next;
      }
      carried.add(event, urls);
    }
    if (!carried.empty) send(carried.toString());
    let payload = "";
    for (const id of byId) {
      if (payload.length + id.length + 1 > NOTICE_BYTES) {
        send(payload);
        payload = "";
      }
      payload = payload === "" ? id : `${payload},${id}`;
    }
    if (payload !== "") send(payload);
  }
  return notices;
}

/** The deliveries a carried notice names, or undefined if it is not one. */
function parseCarried(payload: string): CarriedNotice | undefined {
  try {
    const notice = JSON.parse(payload) as Partial<CarriedNotice>;
    if (typeof notice.w !== "object" || notice.w === null || !Array.isArray(notice.e)) {
      return undefined;
    }
    return notice as CarriedNotice;
  } catch {
    return undefined;
  }
}

/** The worker side: tells its room, and takes the deliveries handed to it. */
export interface HandoverReceiver {
  /** The worker stopped: it tells no more room, and gives back what is handed to it from now. */
  stop(): void;
  close(): Promise<void>;
}

interface HandedRow extends ClaimRow {
  locked_by: string | null;
  locked_until: number | null;
  status: string;
}

export interface HandoverReceiverOptions {
  config: pg.ClientConfig;
  /** The schema whose api processes hear this worker's room. */
  schema: string;
  pool: pg.Pool;
  taker: LocalDeliveryTaker;
  /** Gives back leases on deliveries the worker did not take (the store's releaseLeases). */
  giveBack(leases: HeldLease[], workerId: string): Promise<void>;
  logger: Logger | undefined;
}

/** Starts telling `taker`'s room and listening on its channel; resolves once listening. */
export async function receiveHandovers(
  options: HandoverReceiverOptions,
): Promise<HandoverReceiver> {
  const { pool, taker, logger } = options;
  let stopped = false;
  let closed = false;
  const channel = handoverChannel(taker.workerId);

  /**
   * Webhooks' secrets, read with the first delivery of each handed over: a notice carries the rest.
   * A webhook's secret never changes once it is registered; this relies on it.
   */
  const secrets = new Map<string, string>();

  /** Deliveries handed over, by lease. */
  type ByLease = Map<number, ClaimedDelivery[]>;

  /** Reads handed-over deliveries by id; only those still leased to this worker are taken. */
  async function readHanded(ids: string[], byLease: ByLease): Promise<void> {
    // By id through the unique index; the lease is checked here, so no plan walks the leased rows.
    const { rows } = await pool.query<HandedRow>({
      name: "herald_read_handed_over",
      text: `SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.created_at, w.url, w.secret,
                    e.body, d.locked_by, d.locked_until, d.status
             FROM unnest($1::text[]) WITH ORDINALITY AS h(id, n)
             JOIN deliveries d ON d.id = h.id
             JOIN webhooks w ON w.id = d.webhook_id
             JOIN events e ON e.id = d.event_id
             ORDER BY h.n`,
      values: [ids],
    });
    if (secrets.size > SECRETS_KEPT) secrets.clear();
    for (const row of rows) {
      secrets.set(row.webhook_id, row.secret);
      if (
        row.locked_by !== taker.workerId ||
        row.status !== "pending" ||
        row.locked_until === null
      ) {
        continue;
      }
      addToGroup(byLease, row.locked_until, toClaimedDelivery(row));
    }
  }

  /** Takes the deliveries a notice hands over, reading what it does not carry whole. */
  async function takeHanded(payload: string): Promise<void> {
    const byLease: ByLease = new Map();
    const carried = payload.startsWith("{") ? parseCarried(payload) : undefined;
    const toRead: string[] = [];
    if (carried) {
      // Committed leased to this worker before the notice was sent: no need to read them.
      for (const event of carried.e) {
        for (const [id, webhookId] of event.d) {
          const secret = secrets.get(webhookId);
          const url = carried.w[webhookId];
          if (secret === undefined || url === undefined) {
            toRead.push(id);
            continue;
          }
          addToGroup(byLease, event.l, {
            id,
            webhookId,
            eventId: event.i,
            eventType: event.t,
            url,
            secret,
            body: event.b,
            attempts: 0,
            createdAt: event.c,
          });
        }
      }
    } else {
      toRead.push(...payload.split(","));
    }
    // What the notice carried is taken even when the read fails.
    let unread: unknown;
    if (toRead.length > 0) await readHanded(toRead, byLease).catch((error) => (unread = error));
    const left: HeldLease[] = [];
    for (const [leaseUntil, deliveries] of byLease) {
      const untaken = stopped ? deliveries : taker.takeLeased(deliveries, leaseUntil);
      for (const delivery of untaken) left.push({ id: delivery.id, leaseUntil });
    }
    if (left.length > 0) await options.giveBack(left, taker.workerId);
    if (unread !== undefined) throw unread;
  }

  const session = await holdSession(
    options.config,
    async (client) => {
      client.on("notification", (message) => {
        if (message.channel !== channel || !message.payload) return;
        takeHanded(message.payload).catch((error: unknown) =>
          logger?.error(
            { err: error },
            `Could not read deliveries handed to this worker; they are sent once their lease runs out. ${storeFailureAdvice(error)}`,
          ),
        );
      });
      await client.query(`LISTEN ${channel}`);
    },
    sessionLines(
      logger,
      "hands new deliveries to this worker",
      "Meanwhile the worker claims its work",
    ),
  );

  let told: WorkerRoom | undefined;
  let toldAt = 0;
  let telling = false;
  async function tell(room: WorkerRoom): Promise<void> {
    telling = true;
    try {
      await pool.query({
        name: "herald_tell_room",
        text: "SELECT pg_notify($1, $2)",
        values: [
          roomChannel(options.schema),
          JSON.stringify({ worker: taker.workerId, room, carried: true } satisfies RoomNotice),
        ],
      });
      told = room;
      toldAt = Date.now();
    } finally {
      telling = false;
    }
  }
  const changed = (room: WorkerRoom) =>
    !told ||
    Math.abs(room.deliveries - told.deliveries) > Math.max(1, told.deliveries / 10) ||
    (room.deliveries === 0) !== (told.deliveries === 0) ||
    room.bodyLength < told.bodyLength / 2 ||
    room.fullWebhooks.join() !== told.fullWebhooks.join();
  const timer = setInterval(() => {
    if (stopped || telling) return;
    const room = taker.room();
    if (!room) return;
    if (!changed(room) && Date.now() - toldAt < ROOM_REPEAT_MS) return;
    tell(room).catch(() => undefined);
  }, ROOM_CHECK_MS);
  timer.unref();

  function stop(): void {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    // No room from now: api processes stop handing deliveries to this worker at once.
    tell({ deliveries: 0, bodyLength: 0, leaseMs: 0, fullWebhooks: [] }).catch(() => undefined);
  }
  return {
    stop,
    async close() {
      if (closed) return;
      closed = true;
      stop();
      await session.close();
    },
  };
}
