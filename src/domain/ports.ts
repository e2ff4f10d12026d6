import type {
  AttemptResult,
  ClaimedDelivery,
  DeliveryDetail,
  DeliveryPage,
  DeliveryPageOptions,
  DeliveryUpdate,
  OutgoingEvent,
} from "./deliveries.js";
import type { IncomingEvent, IncomingStatus, RoutedEvent } from "./incoming.js";
import type { Source } from "./sources.js";
import type { Webhook } from "./webhooks.js";

/** Picks, from the active webhooks, those that receive an event. */
export type TargetSelector = (active: readonly Webhook[]) => Webhook[];

/** An outgoing event to store together with something else, in the same transaction. */
export interface PendingEvent {
  event: OutgoingEvent;
  selectTargets: TargetSelector;
  newDeliveryId: () => string;
}

/** Filters and position of a page of incoming webhooks, newest first. */
export interface IncomingQuery {
  source?: string;
  status?: IncomingStatus;
  /** Received at or after (Unix ms). */
  since?: number;
  /** Received before (Unix ms). */
  until?: number;
  limit: number;
  cursor?: string;
}

/**
 * A delivery worker in this process that takes the deliveries this process commits, leased to it
 * before they are visible to anyone else: they need no claim query, and a trigger reaches its
 * receivers without a database round trip. What it does not take is claimed as usual.
 */
export interface LocalDeliveryTaker {
  readonly workerId: string;
  /**
   * Room for the deliveries of one event, to the webhooks `webhookIds`, whose body is `bodyLength`
   * characters: the lease end, and the webhooks whose deliveries it takes (those of webhooks that
   * hold enough already are left to be claimed); undefined when it takes none now.
   */
  reserve(
    webhookIds: readonly string[],
    bodyLength: number,
  ): { leaseUntil: number; taken: ReadonlySet<string> } | undefined;
  /** Takes committed deliveries, leased to it until `leaseUntil`. */
  take(deliveries: ClaimedDelivery[], leaseUntil: number): void;
  /**
   * Hears that a write committed deliveries it did not take (it had no room): they wait in the
   * store to be claimed. Told after the commit, so a claim then finds them.
   */
  untaken(): void;
  /**
   * What it would take now from another process's commits; undefined once it has stopped. A
   * process that delivers nothing itself (the `api` role) leases new deliveries to a worker with
   * room, as this process does to its own worker.
   */
  room(): WorkerRoom | undefined;
  /**
   * Takes deliveries another process committed already leased to it until `leaseUntil`, as much
   * as it has room for; answers those it did not take, whose leases the caller gives back.
   */
  takeLeased(deliveries: ClaimedDelivery[], leaseUntil: number): ClaimedDelivery[];
}

/** What a delivery worker would take now from another process's commits. */
export interface WorkerRoom {
  /** How many more deliveries. */
  deliveries: number;
  /** How many more characters of payload. */
  bodyLength: number;
  /** How long a lease it is given should last, in ms. */
  leaseMs: number;
  /** Webhooks whose deliveries it takes none of now: they hold enough already. */
  fullWebhooks: string[];
}

/** A delivery's lease as its worker holds it: until when. */
export interface HeldLease {
  id: string;
  leaseUntil: number;
}

/** Leases a sweep freed, so that their deliveries are sent again. */
export interface ReleasedLeases {
  /** Leases that ran out: held past their end by a worker that stopped answering or fell behind. */
  expired: number;
  /** Leases of workers found dead (their process ended), freed before they ran out. */
  ofDeadWorkers: number;
  /** The workers found dead by this sweep, whatever they held. */
  deadWorkers: string[];
}

export interface WebhookPage {
  webhooks: Webhook[];
  /** Pass back as `cursor` to read the next page; absent on the last page. */
  nextCursor: string | undefined;
}

/** Where Herald keeps everything. Every write is durable when its promise resolves. */
export interface Store {
  /** Resolves once the database answers a read; rejects (with an outage) when it cannot. */
  ping(): Promise<void>;
  insertWebhook(webhook: Webhook): Promise<void>;
  getWebhook(id: string): Promise<Webhook | undefined>;
  listWebhooks(): Promise<Webhook[]>;
  /** A page of webhooks in creation order, after the one `cursor` names. */
  pageWebhooks(options: { limit: number; cursor?: string }): Promise<WebhookPage>;
  /** Replaces a stored webhook; false when it no longer exists. */
  updateWebhook(webhook: Webhook): Promise<boolean>;
  /** Deletes a webhook and its delivery history; false when it did not exist. */
  deleteWebhook(id: string): Promise<boolean>;

  /**
   * Stores an event and one pending delivery per selected webhook, in one transaction.
   * Resolves with the number of deliveries queued, once committed.
   */
  enqueueEvent(
    event: OutgoingEvent,
    selectTargets: TargetSelector,
    newDeliveryId: () => string,
  ): Promise<number>;
  /**
   * Leases up to `limit` deliveries due at `now` to `workerId` until `leaseUntil`; a leased
   * delivery is not handed to anyone else until it is recorded or the lease runs out.
   */
  claimDueDeliveries(options: {
    now: number;
    limit: number;
    workerId: string;
    leaseUntil: number;
    /** Webhooks whose deliveries are not wanted now: the worker holds enough of theirs. */
    skipWebhooks?: readonly string[];
  }): Promise<ClaimedDelivery[]>;
  /**
   * Records an attempt and its effect on the delivery, and releases the lease. If `workerId` no
   * longer holds the lease, the attempt is kept in the history but the delivery is left alone.
   * `leaseUntil`, the end of the lease the attempt was made under, tells one claim from a later
   * one by the same worker: only the claim that holds the lease now moves the delivery on.
   */
  recordAttempt(update: DeliveryUpdate, workerId: string, leaseUntil?: number): Promise<void>;
  /** Hands the deliveries this process commits to `taker` from now on; undefined stops it. */
  setLocalTaker(taker: LocalDeliveryTaker | undefined): void;
  /**
   * How many delivery workers in other processes told their room within the last few seconds,
   * for a store that hands them new deliveries (PostgreSQL, `api` role); undefined otherwise.
   */
  deliveryWorkersHeard?(): number;
  /**
   * Gives back leases `workerId` holds on deliveries it will not send (it is stopping, or they
   * waited too long). Each names the end of the lease it gives back: a lease that ran out and was
   * taken again, even by the same worker, is not the one given back, and is kept.
   */
  releaseLeases(leases: readonly HeldLease[], workerId: string): Promise<void>;
  /**
   * Marks `workerId` alive for as long as this process runs. A store that several processes share
   * uses the mark to tell a dead worker's leases from a live one's; resolves once it is in place.
   */
  markWorkerAlive(workerId: string): Promise<void>;
  /**
   * Frees leases that ran out at `now`, and those of workers marked alive whose process has since
   * died (a few seconds after, so that a cut connection that comes back costs nothing), without
   * waiting for them to run out; resolves with how many of each, and which workers were found dead.
   */
  releaseExpiredLeases(now: number): Promise<ReleasedLeases>;
  /**
   * When the next pending delivery falls due after `after` (a retry waiting for its time), if any.
   * Deliveries due already are either claimed at once or leased, so they are not counted.
   */
  nextDueAt(after: number): Promise<number | undefined>;
  /**
   * How many deliveries of active webhooks wait to be sent: `due` at `now` (a delivery never tried
   * is due whatever its time), `later` (retries waiting for their time), and `held`, leased to a
   * worker that no longer runs or whose lease ran out, counted apart; leases of running workers are
   * not counted. Leases that live in a process's memory (SQLite) count as due.
   */
  countPendingDeliveries(now: number): Promise<{ due: number; later: number; held: number }>;
  /** A webhook's history, newest first; only deliveries in `status`, when given. */
  listDeliveries(webhookId: string, options: DeliveryPageOptions): Promise<DeliveryPage>;
  getDelivery(webhookId: string, deliveryId: string): Promise<DeliveryDetail | undefined>;
  /**
   * Makes a delivery that is done (failed or succeeded) pending again, due at `now`, keeping its
   * attempts. `pending`: it is still waiting to be sent, and is left alone.
   */
  requeueDelivery(
    webhookId: string,
    deliveryId: string,
    now: number,
  ): Promise<"requeued" | "pending" | "not_found">;
  /**
   * Makes a pending delivery that waits for a later attempt due at `now`. False when it waits for
   * no later time: already due or due within DUE_SOON_MS (queued again by a request a moment
   * before, whose clock may run a little ahead), being sent (leased), done, or not found.
   */
  bringDeliveryForward(webhookId: string, deliveryId: string, now: number): Promise<boolean>;
  /** An outgoing event as it was stored: its type and the exact body every delivery sends. */
  getEvent(id: string): Promise<OutgoingEvent | undefined>;

  /**
   * Stores an incoming webhook once per (service, dedupe key), and, when it is new and `route` is
   * given, the outgoing event it was routed to with its deliveries, in the same transaction.
   * Resolves with the stored id, whether an earlier copy already held it, and deliveries queued.
   */
  saveIncoming(
    event: IncomingEvent,
    route?: PendingEvent,
  ): Promise<{ eventId: string; duplicate: boolean; deliveries: number }>;
  listIncoming(
    query: IncomingQuery,
  ): Promise<{ events: IncomingEvent[]; nextCursor: string | undefined }>;
  getIncoming(id: string): Promise<IncomingEvent | undefined>;
  /**
   * The outgoing events an incoming webhook was routed to, newest first, at most `limit`: one when
   * it came, and one more for each replay that routed it.
   */
  routedEvents(incomingEventId: string, limit: number): Promise<RoutedEvent[]>;
  /** Records a new routing outcome of a stored incoming webhook, with its outgoing event if routed. */
  recordRouting(
    id: string,
    outcome: { status: IncomingStatus; outgoingEventId: string | null; routeError: string | null },
    route?: PendingEvent,
  ): Promise<number>;

  insertSource(source: Source): Promise<void>;
  getSource(name: string): Promise<Source | undefined>;
  listSources(): Promise<Source[]>;
  /** Inserts or replaces a source. */
  saveSource(source: Source): Promise<void>;
  /**
   * Deletes a source. The webhooks it received stay, but their dedupe keys are forgotten, so that
   * a source created later under the same name takes its sender's ids afresh.
   */
  deleteSource(name: string): Promise<boolean>;

  /** Finishes pending writes and closes. */
  close(): Promise<void>;
}

/** Sends one signed attempt of a delivery; never throws for receiver failures, it reports them. */
export interface Sender {
  send(delivery: ClaimedDelivery): Promise<AttemptResult>;
  /** Ends the sender: attempts still in flight are cut off, and fail with a reason that says so. */
  close(): Promise<void>;
}

/** Wakes idle delivery workers when new deliveries are committed. */
export interface WakeSignal {
  /**
   * Wakes the delivery workers; with `changedWebhook`, also tells them that webhook changed (its
   * URL, made inactive or active, deleted), so that they give back what they hold for it to be
   * claimed as it now is.
   */
  notify(changedWebhook?: string): void;
  subscribe(listener: (changedWebhook?: string) => void): () => void;
}

/** Structured log lines, written in plain words. */
export interface Logger {
  /** Whether lines of `level` are written, so a line costly to build can be skipped. */
  isLevelEnabled(level: "debug" | "info" | "warn" | "error"): boolean;
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
