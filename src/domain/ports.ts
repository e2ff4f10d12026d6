import type {
  AttemptResult,
  ClaimedDelivery,
  DeliveryDetail,
  DeliveryPage,
  DeliveryUpdate,
  OutgoingEvent,
} from "./deliveries.js";
import type { IncomingEvent } from "./incoming.js";
import type { Webhook } from "./webhooks.js";

/** Picks, from the active webhooks, those that receive an event. */
export type TargetSelector = (active: readonly Webhook[]) => Webhook[];

/** Where Herald keeps everything. Every write is durable when its promise resolves. */
export interface Store {
  insertWebhook(webhook: Webhook): Promise<void>;
  getWebhook(id: string): Promise<Webhook | undefined>;
  listWebhooks(): Promise<Webhook[]>;
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
  }): Promise<ClaimedDelivery[]>;
  /**
   * Records an attempt and its effect on the delivery, and releases the lease. If `workerId` no
   * longer holds the lease, the attempt is kept in the history but the delivery is left alone.
   */
  recordAttempt(update: DeliveryUpdate, workerId: string): Promise<void>;
  /** Frees leases that ran out at `now` (their worker died); resolves with how many. */
  releaseExpiredLeases(now: number): Promise<number>;
  /** When the earliest pending delivery can next be claimed, if any is pending. */
  nextDueAt(): Promise<number | undefined>;
  listDeliveries(
    webhookId: string,
    options: { limit: number; cursor?: string },
  ): Promise<DeliveryPage>;
  getDelivery(webhookId: string, deliveryId: string): Promise<DeliveryDetail | undefined>;

  /**
   * Stores an incoming webhook once per (service, dedupe key). Resolves with the stored id and
   * whether an earlier copy already held it.
   */
  saveIncoming(event: IncomingEvent): Promise<{ eventId: string; duplicate: boolean }>;

  /** Finishes pending writes and closes. */
  close(): Promise<void>;
}

/** Sends one signed attempt of a delivery; never throws for receiver failures, it reports them. */
export interface Sender {
  send(delivery: ClaimedDelivery): Promise<AttemptResult>;
  close(): Promise<void>;
}

/** Wakes idle delivery workers when new deliveries are committed. */
export interface WakeSignal {
  notify(): void;
  subscribe(listener: () => void): () => void;
}

/** Structured log lines, written in plain words. */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
