/**
 * The delivery loop: takes the deliveries this process commits (already leased to it) and claims
 * other due ones in batches, sends them with bounded concurrency (overall and per webhook, taking
 * webhooks in turn), and records each attempt with its next step (delivered, retry at a time, or
 * give up). Retries are rows
 * with a due time, never timers: the loop wakes when new work is committed, when a retry falls due,
 * or on a slow poll.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Clock } from "../domain/clock.js";
import type {
  AttemptRecord,
  AttemptResult,
  ClaimedDelivery,
  DeliveryUpdate,
} from "../domain/deliveries.js";
import { consecutiveRuns } from "../domain/grouping.js";
import { createLogThrottle } from "../domain/log-throttle.js";
import type {
  HeldLease,
  LocalDeliveryTaker,
  Logger,
  Sender,
  Store,
  WakeSignal,
} from "../domain/ports.js";
import {
  type AttemptOutcome,
  decideOutcome,
  type RetrySchedule,
  statusAfter,
} from "../domain/retry-policy.js";
import { FairQueue } from "./fair-queue.js";

/**
 * How the worker came by its deliveries: claimed from the database, committed by its own process,
 * or handed to it by another process (an `api` process on PostgreSQL).
 */
export type TakenVia = "claim" | "own_commit" | "handed_over";

/** Hears how each attempt ended, and how deliveries reached the worker (metrics). */
export interface DeliveryObserver {
  attemptFinished(outcome: AttemptOutcome["kind"], durationMs: number): void;
  taken?(via: TakenVia, deliveries: number): void;
}

export interface DeliveryWorkerOptions {
  store: Store;
  sender: Sender;
  clock: Clock;
  wake: WakeSignal;
  logger: Logger;
  /**
   * What an operator can do about a database failure, by the error, for the lines that report
   * failed claims, attempt records and lease sweeps.
   */
  storeFailureAdvice?: (error: unknown) => string;
  schedule: RetrySchedule;
  /** Most attempts in flight at once. */
  concurrency: number;
  /**
   * Most attempts in flight at once to one webhook, so that a receiver that hangs or a webhook with
   * a long backlog leaves slots for the others. Defaults to a quarter of `concurrency`.
   */
  concurrencyPerWebhook?: number;
  /** Per-attempt time limit; leases outlast it. */
  timeoutMs: number;
  /** Longest sleep when nothing is due. */
  pollIntervalMs?: number;
  /** Most deliveries claimed in one query. */
  batchSize?: number;
  /**
   * Most deliveries held at once (waiting or in flight) when taking those this process commits,
   * whatever the send rate; beyond it, new deliveries wait in the database to be claimed.
   */
  holdLimit?: number;
  /**
   * Most payload held at once (waiting or in flight), in characters of delivery bodies: with large
   * payloads this binds before `holdLimit`, and what is beyond it waits in the database.
   */
  holdBodyLength?: number;
  random?: () => number;
  observer?: DeliveryObserver;
}

/** A running delivery loop. */
export interface DeliveryWorker {
  /** Marks this worker alive in the store, frees the leases of workers that died, and starts. */
  start(): Promise<void>;
  /**
   * Stops claiming, waits up to `graceMs` for attempts in flight, and resolves with how many were
   * still waiting for their receivers then (cut off: they stay pending and are sent again).
   */
  stop(graceMs: number): Promise<number>;
  /**
   * After the sender has cut off what was still in flight: waits up to `ms` for those attempts to
   * be recorded or given back, so that nothing is written to a closed store.
   */
  settle(ms: number): Promise<void>;
  /** Attempts in flight now. */
  inFlight(): number;
}

/**
 * How often leases are swept: those that ran out, and those of workers that died (found within a
 * few seconds where the store can tell, as on PostgreSQL).
 */
const SWEEP_INTERVAL_MS = 5_000;

/**
 * A webhook whose receiver has not answered for this long (or ever) keeps only a fair share of the
 * slots; one that answers may use up to its limit.
 */
const SLOW_RECEIVER_MS = 1000;

/**
 * The part of the slots (one in this many, at least one) that webhooks held to their share never
 * take together: a webhook whose receiver answers, or one that comes with work later, always finds
 * one free, even after slow receivers took the rest while they were alone.
 */
const QUICK_RESERVE_PART = 8;

/**
 * An attempt whose record could not be written is written again after these waits, doubling up to
 * the last, for as long as its lease holds: a record lost to a short database outage would have
 * the delivery sent again once the lease runs out.
 */
const RECORD_RETRY_FIRST_MS = 250;
const RECORD_RETRY_MAX_MS = 2_000;

/** Payload a worker holds at most by default, in body characters: 64 deliveries of 1 MB. */
export const DEFAULT_HOLD_BODY_LENGTH = 64 * 1024 * 1024;

/** A delay in the largest unit that keeps it readable: 250 ms, 5 s, 30 min, 10 h, 3 days. */
export function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 48 * 3_600_000) return `${Math.round(ms / 3_600_000)} h`;
  return `${Math.round(ms / 86_400_000)} days`;
}

/** Why a retry waits as long as it does, when the receiver had a say. */
function retryAfterNote(outcome: AttemptOutcome & { kind: "retry" }): string {
  const held = outcome.retryAfter;
  if (!held) return "";
  if (held.held === "honoured") return ", as its Retry-After header asked";
  return `, the longest Herald waits (its Retry-After header asked for ${formatDelay(held.askedMs)})`;
}

/** `text` ending as a sentence does, so another can follow it. */
function withFullStop(text: string): string {
  return text.endsWith(".") ? text : `${text}.`;
}

function describeOutcome(
  result: AttemptResult,
  outcome: AttemptOutcome,
  leaseLapsed: boolean,
): string | null {
  if (outcome.kind === "delivered") return null;
  // An error written as sentences ends with a full stop; what follows it starts a new one.
  const what = result.error ?? `receiver answered ${result.response?.status}`;
  const then = (next: string) =>
    what.endsWith(".") ? `${what} ${next[0]?.toUpperCase()}${next.slice(1)}.` : `${what}; ${next}`;
  let text: string;
  if (outcome.kind === "retry") {
    text = then(`next attempt in ${formatDelay(outcome.delayMs)}${retryAfterNote(outcome)}`);
  }
  // A refused status names itself; attempts running out need the last answer said too.
  else if (result.error || outcome.exhausted) text = then(outcome.reason);
  else text = outcome.reason;
  if (!leaseLapsed) return text;
  return `${withFullStop(text)} This worker's lease on the delivery ran out before the attempt ended (the process was paused or overloaded), so another attempt may have been made meanwhile and settled it.`;
}

/**
 * A body held in memory, counted once however many deliveries hold it (the deliveries of one event
 * committed here share it) and until the last of them lets go.
 */
interface HeldBody {
  length: number;
  holders: number;
}

/** A delivery waiting for a slot or in flight, with the end of its lease and its body's count. */
interface Held {
  delivery: ClaimedDelivery;
  leaseUntil: number;
  body: HeldBody;
}

/** Creates the delivery loop; it does nothing until started. */
export function createDeliveryWorker(options: DeliveryWorkerOptions): DeliveryWorker {
  const { store, sender, clock, wake, logger, schedule, concurrency, timeoutMs } = options;
  const adviceFor =
    options.storeFailureAdvice ?? (() => "Check that the database is running and reachable.");
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const batchSize = options.batchSize ?? 100;
  const holdLimit = options.holdLimit ?? 20_000;
  const holdBodyLength = options.holdBodyLength ?? DEFAULT_HOLD_BODY_LENGTH;
  const random = options.random ?? Math.random;
  const perWebhook = Math.max(
    1,
    Math.min(concurrency, options.concurrencyPerWebhook ?? Math.ceil(concurrency / 4)),
  );
  // Host and process id let an operator see which process holds a lease.
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  // A lease outlasts the longest attempt, with room to record it.
  const leaseMs = timeoutMs + 10_000;

  let running = false;
  let claiming = false;
  /**
   * Whether the store may hold due deliveries that nobody has leased: set by a wake-up, a due time
   * or poll, leases given back or freed, a claim that filled its batch, and a webhook the last
   * claim skipped whose line ran short; cleared by a claim. An answered attempt does not set it,
   * so a worker fed by its own commits sends without querying for work that is not there.
   */
  let claimDue = true;
  /**
   * Whether the next due time may have moved since the sleep was set: a retry was recorded, leases
   * were freed, or the sleep ended. A claim after a mere wake-up leaves the sleep as it was, so it
   * costs no second query.
   */
  let dueTimeStale = true;
  let pumpQueued = false;
  let sleepTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  let inFlight = 0;
  /** Attempts in flight per webhook; a webhook with none has no entry. */
  const inFlightTo = new Map<string, number>();
  /** Claimed deliveries waiting for a free slot, with the end of their lease, by webhook. */
  const ready = new FairQueue<Held>(({ delivery }) => delivery.webhookId);
  const inFlightOf = (webhookId: string) => inFlightTo.get(webhookId) ?? 0;
  /** When each webhook's receiver last answered quickly (within SLOW_RECEIVER_MS), by webhook. */
  const answeredAt = new Map<string, number>();
  /** Webhooks whose latest finished attempt took SLOW_RECEIVER_MS or longer. */
  const slowed = new Set<string>();
  /** What webhooks held to their share may have in flight together. */
  const slowLimit = Math.max(
    1,
    concurrency - Math.max(1, Math.floor(concurrency / QUICK_RESERVE_PART)),
  );
  /** Attempts in flight of webhooks held to their share; counted once a dispatch needs it. */
  let slowInFlight: number | undefined;
  /**
   * What a webhook whose receiver has not answered lately may have in flight: an equal share of
   * `slowLimit` among the webhooks with work (attempts in flight or deliveries waiting), at least
   * one. Set as dispatch() begins.
   */
  let share = perWebhook;
  /** When dispatch() began. */
  let dispatchedAt = 0;
  /** Whether a webhook's receiver answered quickly within the last SLOW_RECEIVER_MS. */
  function answeredLately(webhookId: string): boolean {
    const at = answeredAt.get(webhookId);
    return at !== undefined && dispatchedAt - at < SLOW_RECEIVER_MS;
  }

  /**
   * Whether a webhook's receiver answers: it answered quickly within the last SLOW_RECEIVER_MS, or
   * it has nothing in flight (so nothing that hangs) and its latest attempt was not slow. A new
   * webhook so starts one attempt beyond its share, and an idle one that answered before is not
   * held back by the slow receivers around it.
   */
  function answering(webhookId: string): boolean {
    if (answeredLately(webhookId)) return true;
    return !inFlightTo.has(webhookId) && !slowed.has(webhookId);
  }

  /** Keeps how quickly a webhook's receiver answered its latest attempt, for answering(). */
  function noteAnswer(webhookId: string, attempt: AttemptRecord): void {
    if (attempt.durationMs >= SLOW_RECEIVER_MS) {
      if (slowed.size >= 100_000) slowed.clear();
      slowed.add(webhookId);
    } else if (attempt.statusCode !== null) {
      if (answeredAt.size >= 100_000) answeredAt.clear();
      answeredAt.set(webhookId, clock.now());
      slowed.delete(webhookId);
    }
  }

  /** Attempts in flight of webhooks that do not answer, counted once per dispatch. */
  function slowSending(): number {
    if (slowInFlight === undefined) {
      slowInFlight = 0;
      for (const [webhookId, sending] of inFlightTo) {
        if (!answering(webhookId)) slowInFlight += sending;
      }
    }
    return slowInFlight;
  }
  /** A round of attempts for a webhook: what it may have in flight once it has slots again. */
  function fullRound(webhookId: string): number {
    return answering(webhookId) ? perWebhook : share;
  }

  /**
   * A webhook whose receiver answers (see answering()) may start attempts up to its limit; any
   * other (slow, hanging, or not answered yet) only up to its share, and only while such webhooks
   * together hold fewer than `slowLimit` slots. However many receivers hang, holding their slots
   * until their attempts time out, they leave the other webhooks slots to go on with.
   */
  function mayStart(webhookId: string): boolean {
    const sending = inFlightOf(webhookId);
    if (sending >= perWebhook) return false;
    if (answering(webhookId)) {
      // A webhook never answered (new, or since a restart) may hang: it starts at once, but not
      // in the slots kept for receivers that answer, or many new hanging ones would take them all.
      return answeredAt.has(webhookId) || slowSending() < slowLimit;
    }
    return sending < share && slowSending() < slowLimit;
  }

  /** Body characters of the deliveries waiting in `ready` or in flight. */
  let heldBodyLength = 0;
  /** A recent delivery body's length, averaged, to size claims so that they fit the budget. */
  let typicalBodyLength = 0;
  /**
   * Body characters reserved for commits not yet handed over, by lease end (the key take() is
   * given). A write that fails or keeps none of them never hands them over: they lapse with the
   * lease instead.
   */
  const reserved = new Map<number, number>();
  let reservedBodyLength = 0;

  function unreserve(leaseUntil: number, bodyLength: number): void {
    const left = (reserved.get(leaseUntil) ?? 0) - bodyLength;
    if (left > 0) reserved.set(leaseUntil, left);
    else reserved.delete(leaseUntil);
    reservedBodyLength -= bodyLength + Math.min(0, left);
  }

  function dropLapsedReservations(now: number): void {
    for (const [until, length] of reserved) {
      if (until <= now) unreserve(until, length);
    }
  }

  function hold(delivery: ClaimedDelivery, leaseUntil: number, body: HeldBody): void {
    if (body.holders++ === 0) heldBodyLength += body.length;
    typicalBodyLength =
      typicalBodyLength === 0
        ? delivery.body.length
        : typicalBodyLength * 0.9 + delivery.body.length * 0.1;
    ready.push({ delivery, leaseUntil, body });
  }

  function letGo(body: HeldBody): void {
    if (--body.holders === 0) heldBodyLength -= body.length;
  }

  function started(webhookId: string): void {
    // Once in flight, a webhook that has not answered lately counts among the slow ones.
    if (slowInFlight !== undefined && !answeredLately(webhookId)) slowInFlight++;
    inFlight++;
    inFlightTo.set(webhookId, (inFlightTo.get(webhookId) ?? 0) + 1);
  }

  function finished(webhookId: string): void {
    inFlight--;
    const left = (inFlightTo.get(webhookId) ?? 1) - 1;
    if (left > 0) inFlightTo.set(webhookId, left);
    else inFlightTo.delete(webhookId);

    // A slot is free for a webhook whose waiting deliveries were given back: claim them again.
    if (shed.delete(webhookId)) claimDue = true;
    // A webhook the last claim skipped may have more waiting in the store: claim once its own
    // line runs short, rather than again and again while it has no room.
    if (skipped.has(webhookId) && ready.lengthOf(webhookId) < fullRound(webhookId)) {
      skipped.delete(webhookId);
      claimDue = true;
    }
  }

  /** Webhooks the last claim skipped, for having no room. */
  let skipped = new Set<string>();

  /**
   * Webhooks held to their share (receivers that have not answered lately) whose waiting
   * deliveries were given back to the store to free the payload budget; claims skip them until
   * one of their attempts ends.
   */
  const shed = new Set<string>();

  /**
   * With the payload budget spent, gives back the deliveries waiting for webhooks that have no free
   * slot (a receiver that hangs), so that their bodies do not hold back the other webhooks.
   */
  function shedWaiting(): void {
    const leases: HeldLease[] = [];
    for (const webhookId of [...ready.keys()]) {
      // A receiver that answers frees its slots soon: only slow ones are shed.
      if (mayStart(webhookId) || answering(webhookId)) continue;
      for (const { delivery, leaseUntil, body } of ready.takeAllOf(webhookId)) {
        letGo(body);
        leases.push({ id: delivery.id, leaseUntil });
      }
      shed.add(webhookId);
    }
    if (leases.length > 0) void giveBack(leases);
  }

  /**
   * A webhook changed (its URL, made inactive, deleted): what waits for it here was claimed as it
   * was, and goes back to the store, to be claimed as it now is (by its new URL; not while it is
   * inactive; not at all once deleted). Attempts already in flight go on.
   */
  function giveBackWaitingFor(webhookId: string): void {
    const leases: HeldLease[] = [];
    for (const { delivery, leaseUntil, body } of ready.takeAllOf(webhookId)) {
      letGo(body);
      leases.push({ id: delivery.id, leaseUntil });
    }
    // Claimed again as it now is, even if its slow receiver had it left out of claims.
    shed.delete(webhookId);
    if (leases.length > 0) void giveBack(leases).then(scheduleClaim);
  }

  /**
   * Webhooks with enough deliveries waiting already: a full round (a share for a slow one, the
   * limit for others) that may not start now, or two rounds of a slow one. Claims skip them, and
   * what waits for them does not count against the room for claiming the others' deliveries. A
   * slow receiver's webhook that may start but finds every slot taken is skipped too: otherwise
   * each claim would take more of its oldest deliveries, whose leases then run out in the line.
   */
  function saturated(): { webhooks: string[]; waiting: number } {
    const webhooks: string[] = [];
    let waiting = 0;
    for (const webhookId of ready.keys()) {
      const queued = ready.lengthOf(webhookId);
      const round = fullRound(webhookId);
      const enough = !mayStart(webhookId) ? round : answering(webhookId) ? Infinity : 2 * round;
      if (queued >= enough) {
        webhooks.push(webhookId);
        waiting += queued;
      }
    }
    for (const webhookId of shed) {
      if (!mayStart(webhookId) && ready.lengthOf(webhookId) < fullRound(webhookId)) {
        webhooks.push(webhookId);
      }
    }
    return { webhooks, waiting };
  }

  let recording = 0;
  let drained: (() => void) | undefined;
  /** Claims that failed in a row. */
  let claimFailures = 0;
  /** Failed claims, attempt records and lease sweeps, which an outage repeats: one line per 30 s. */
  const storeFailureLog = createLogThrottle(30_000, () => clock.now());
  /**
   * Attempts that failed and will be retried: one line per receiving host per minute, kept through
   * successes, so a receiver that fails on and off is one line a minute too, and a host that is
   * down for many webhooks one line, not one per webhook. Bounded far above the hosts that fail
   * at once in an outage.
   */
  const failingLog = createLogThrottle(60_000, () => clock.now(), 100_000);
  /** Hosts last said to be failing, so that their next success is said too. */
  const failing = new Set<string>();
  /** Per host, the webhooks whose attempts failed since its last line, counted in that line. */
  const failedWebhooks = new Map<string, Set<string>>();

  /** Deliveries that failed for good: one line per host per minute, as an outage ends many. */
  const gaveUpLog = createLogThrottle(60_000, () => clock.now(), 100_000);
  const gaveUpWebhooks = new Map<string, Set<string>>();

  /** The receiving host of a delivery, or undefined when its URL cannot be read. */
  function receiverHost(delivery: ClaimedDelivery): string | undefined {
    try {
      return new URL(delivery.url).host;
    } catch {
      return undefined;
    }
  }

  /** What failing lines are held back by: the receiving host, else the webhook. */
  function hostOf(delivery: ClaimedDelivery): string {
    return receiverHost(delivery) ?? `webhook ${delivery.webhookId}`;
  }

  /**
   * Notes `webhookId` among those failing at `host` since its last line; returns how many others
   * there were, and starts the count over, when a line is due.
   */
  function othersAtHost(
    seen: Map<string, Set<string>>,
    host: string,
    webhookId: string,
    due: boolean,
  ): number {
    let webhooks = seen.get(host);
    if (!webhooks) {
      if (seen.size >= 10_000) seen.clear();
      webhooks = new Set();
      seen.set(host, webhooks);
    }
    if (webhooks.size < 100_000) webhooks.add(webhookId);
    if (!due) return 0;
    seen.delete(host);
    return webhooks.size - 1;
  }

  /** ", and to 3 other webhooks at the same host,", or nothing. */
  function andOthers(others: number): string {
    return others === 0
      ? ""
      : `, and to ${others === 1 ? "1 other webhook" : `${others} other webhooks`} at the same host,`;
  }

  /**
   * "webhook wh_… (at host)": the host says whose receiver it is at a glance; the rest of the URL
   * is left out, as its path or query may hold a token.
   */
  function webhookNamed(delivery: ClaimedDelivery): string {
    const host = receiverHost(delivery);
    return host === undefined
      ? `webhook ${delivery.webhookId}`
      : `webhook ${delivery.webhookId} (at ${host})`;
  }

  function logGaveUp(delivery: ClaimedDelivery, update: DeliveryUpdate): void {
    const { webhookId } = delivery;
    const host = hostOf(delivery);
    const count = gaveUpLog.due(host);
    const others = othersAtHost(gaveUpWebhooks, host, webhookId, count !== undefined);
    if (count === undefined) return;
    const address = `GET /api/webhooks/${webhookId}/deliveries/${delivery.id}`;
    logger.warn(
      {
        deliveryId: delivery.id,
        webhookId,
        attempts: update.attempts,
        failedDeliveries: count,
        otherWebhooks: others,
      },
      count === 1
        ? `Delivery ${delivery.id} to ${webhookNamed(delivery)} failed for good: ${withFullStop(update.attempt.error ?? "")} Every attempt is listed at ${address}. This line repeats at most once a minute for this host.`
        : `${count} deliveries to ${webhookNamed(delivery)}${andOthers(others)} failed for good since the last line. The latest, ${delivery.id}: ${withFullStop(update.attempt.error ?? "")} Every attempt is listed at ${address}; GET /api/webhooks/<id>/deliveries?status=failed lists the others of each webhook. This line repeats at most once a minute for this host.`,
    );
  }

  /** Tells the operator, in a line they can see, that a webhook's receiver fails or works again. */
  function logReceiverHealth(
    delivery: ClaimedDelivery,
    update: DeliveryUpdate,
    outcome: AttemptOutcome,
  ): void {
    const { webhookId } = delivery;
    const host = hostOf(delivery);
    if (outcome.kind === "delivered") {
      if (!failing.delete(host)) return;
      logger.info(
        { webhookId, deliveryId: delivery.id },
        `Deliveries to ${webhookNamed(delivery)} succeed again: its receiver answered ${update.attempt.statusCode}.`,
      );
      return;
    }
    // An attempt ended by this worker's own stop says nothing of the receiver; the stop's line
    // counts the attempts it cut off.
    if (outcome.kind !== "retry" || !running) return;
    const count = failingLog.due(host);
    const others = othersAtHost(failedWebhooks, host, webhookId, count !== undefined);
    if (count === undefined) return;
    if (failing.size >= 100_000) failing.clear();
    failing.add(host);
    logger.warn(
      { webhookId, deliveryId: delivery.id, failedAttempts: count, otherWebhooks: others },
      `Deliveries to ${webhookNamed(delivery)}${andOthers(others)} are failing${count > 1 ? ` (${count} failed attempts since the last line)` : ""}. Latest, delivery ${delivery.id}: ${withFullStop(update.attempt.error ?? "")} Failed deliveries are retried on schedule; GET /api/webhooks/${webhookId}/deliveries lists them. This line repeats at most once a minute for this host while it lasts.`,
    );
  }

  function schedulePump(): void {
    if (!running || pumpQueued) return;
    pumpQueued = true;
    setImmediate(() => {
      pumpQueued = false;
      void pump();
    });
  }

  /** Pumps with a claim: the store may hold due deliveries nobody has leased. */
  function scheduleClaim(): void {
    claimDue = true;
    schedulePump();
  }

  /** Pumps with a claim, and then reads the next due time again. */
  function scheduleDueCheck(): void {
    dueTimeStale = true;
    scheduleClaim();
  }

  /** Sends one attempt and decides what follows it. */
  async function attempt(
    delivery: ClaimedDelivery,
    leaseUntil: number,
  ): Promise<{ update: DeliveryUpdate; outcome: AttemptOutcome } | "cut off"> {
    const result = await sender.send(delivery);
    // Ended by this worker's own stop: no attempt to count, only a delivery to send again.
    if (result.cutOff && !running) return "cut off";
    const leaseLapsed = clock.now() > leaseUntil;
    const attemptNumber = delivery.attempts + 1;
    const outcome = decideOutcome(
      result,
      attemptNumber,
      schedule,
      random,
      `POST /api/webhooks/${delivery.webhookId}/deliveries/${delivery.id}/retry`,
    );
    const finishedAt = result.startedAt + result.durationMs;
    const update: DeliveryUpdate = {
      deliveryId: delivery.id,
      status: statusAfter(outcome),
      attempts: attemptNumber,
      nextAttemptAt: outcome.kind === "retry" ? finishedAt + outcome.delayMs : null,
      attempt: {
        deliveryId: delivery.id,
        attempt: attemptNumber,
        startedAt: result.startedAt,
        durationMs: result.durationMs,
        statusCode: result.response?.status ?? null,
        error: describeOutcome(result, outcome, leaseLapsed),
        responseHeaders: result.response?.headers ?? null,
        responseBody: result.response?.body ?? null,
      },
    };
    return { update, outcome };
  }

  /** Writes an attempt's record, again after a failure while the lease holds and the worker runs. */
  async function storeRecord(update: DeliveryUpdate, leaseUntil: number): Promise<void> {
    for (let wait = RECORD_RETRY_FIRST_MS; ; wait = Math.min(wait * 2, RECORD_RETRY_MAX_MS)) {
      try {
        await store.recordAttempt(update, workerId, leaseUntil);
        return;
      } catch (error) {
        if (!running || clock.now() + wait >= leaseUntil) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** Records an attempt; the delivery stays leased until this is committed, so nobody sends it twice. */
  async function record(
    delivery: ClaimedDelivery,
    leaseUntil: number,
    update: DeliveryUpdate,
    outcome: AttemptOutcome,
  ) {
    recording++;
    try {
      await storeRecord(update, leaseUntil);
      options.observer?.attemptFinished(outcome.kind, update.attempt.durationMs);
      if (logger.isLevelEnabled("debug")) {
        const { statusCode, durationMs, error } = update.attempt;
        logger.debug(
          {
            deliveryId: delivery.id,
            webhookId: delivery.webhookId,
            attempt: update.attempts,
            statusCode,
            durationMs,
          },
          `Delivery ${delivery.id} to webhook ${delivery.webhookId}, attempt ${update.attempts}: ${outcome.kind === "delivered" ? `delivered (receiver answered ${statusCode} in ${durationMs} ms)` : error}`,
        );
      }
      logReceiverHealth(delivery, update, outcome);
      // The retry is a row with a due time now: the next claim sets the sleep to wake for it.
      if (outcome.kind === "retry") scheduleDueCheck();
      if (outcome.kind === "give-up") logGaveUp(delivery, update);
    } catch (error) {
      const count = storeFailureLog.due("record");
      if (count !== undefined) {
        logger.error(
          { err: error, deliveryId: delivery.id, failedRecords: count },
          `Could not record ${count === 1 ? "an attempt" : `${count} attempts`} (the latest of delivery ${delivery.id}); ${count === 1 ? "it stays" : "they stay"} pending and will be sent again. ${adviceFor(error)} This line repeats at most every 30 s.`,
        );
      }
    } finally {
      doneRecording();
    }
  }

  /** Starts attempts from the claimed queue while slots are free, taking webhooks in turn. */
  function dispatch(): void {
    /** Deliveries whose lease would run out before an attempt could finish; rarely any. */
    let expiring: HeldLease[] | undefined;
    dispatchedAt = clock.now();
    slowInFlight = undefined;
    let busy = inFlightTo.size;
    for (const webhookId of ready.keys()) if (!inFlightTo.has(webhookId)) busy++;
    // Shares of what slow receivers may hold together, so that however many hang, each of them
    // (a slow one that answers in the end too) still finds its share free.
    share = Math.max(1, Math.floor(slowLimit / Math.max(1, busy)));
    while (running && inFlight < concurrency) {
      const next = ready.take(mayStart);
      if (!next) break;
      const { delivery, leaseUntil, body } = next;
      if (clock.now() + timeoutMs > leaseUntil) {
        letGo(body);
        expiring ??= [];
        expiring.push({ id: delivery.id, leaseUntil });
        continue;
      }
      started(delivery.webhookId);
      // The slot is free once the receiver has answered; recording goes on beside the next sends.
      void attempt(delivery, leaseUntil).then(
        (done) => {
          if (done === "cut off") {
            finished(delivery.webhookId);
            letGo(body);
            return releaseCutOff({ id: delivery.id, leaseUntil });
          }
          const { update, outcome } = done;
          noteAnswer(delivery.webhookId, update.attempt);
          finished(delivery.webhookId);
          letGo(body);
          countAnswer(delivery.webhookId);
          schedulePump();
          return record(delivery, leaseUntil, update, outcome);
        },
        (error: unknown) => {
          finished(delivery.webhookId);
          letGo(body);
          schedulePump();
          logger.error(
            { err: error, deliveryId: delivery.id },
            `Attempt of delivery ${delivery.id} failed inside Herald; it will be sent again.`,
          );
        },
      );
    }
    // Given back rather than dropped, so they are claimed again, with a new lease, at once
    // instead of once the old lease runs out.
    if (expiring) void giveBack(expiring).then(scheduleDueCheck);
  }

  async function pump(): Promise<void> {
    if (!running) return;
    dispatch();
    if (claiming || !claimDue) return;
    if (heldBodyLength + reservedBodyLength > holdBodyLength) shedWaiting();
    // Claims run ahead of the sends by up to one batch, so a slot that frees up starts its next
    // attempt at once instead of waiting for a database round trip.
    const blocked = saturated();
    skipped = new Set(blocked.webhooks);
    const waiting = ready.length - blocked.waiting;
    const room = concurrency + batchSize - inFlight - waiting;
    // Claim in large batches: each claim is a query that passes over the rows already held.
    const worthClaiming = Math.min(
      Math.ceil(batchSize / 2),
      Math.ceil((concurrency + batchSize) / 4),
    );
    if (waiting >= batchSize / 2 || room < worthClaiming) return;
    // Large payloads: claim no more than the payload budget has room for, by the recent bodies'
    // size, and nothing while it is spent (the attempts in flight free it, and pump again).
    dropLapsedReservations(clock.now());
    const bodyRoom = holdBodyLength - heldBodyLength - reservedBodyLength;
    if (bodyRoom <= 0) {
      // Attempts in flight pump again as they end; with none, only reservations fill the budget,
      // and they are handed over or lapse: look again after the poll interval.
      if (inFlight === 0) sleep(pollIntervalMs);
      return;
    }
    const fits = typicalBodyLength > 0 ? Math.floor(bodyRoom / typicalBodyLength) : batchSize;
    const limit = Math.max(1, Math.min(room, batchSize, fits));
    claiming = true;
    claimDue = false;
    let claimed: ClaimedDelivery[] = [];
    const now = clock.now();
    const leaseUntil = now + leaseMs;
    try {
      claimed = await store.claimDueDeliveries({
        now,
        limit,
        workerId,
        leaseUntil,
        skipWebhooks: blocked.webhooks,
      });
    } catch (error) {
      claimFailures++;
      const count = storeFailureLog.due("claim");
      if (count !== undefined) {
        logger.error(
          { err: error, failedClaims: count },
          `Could not read due deliveries from the database${count > 1 ? ` (${count} tries since the last line)` : ""}; trying again every second. ${adviceFor(error)} This line repeats at most every 30 s while it lasts.`,
        );
      }
      claiming = false;
      claimDue = true;
      sleep(1000);
      return;
    }
    if (claimFailures > 0) {
      logger.info(
        { failedClaims: claimFailures },
        `Reading due deliveries from the database works again, after ${claimFailures} failed ${claimFailures === 1 ? "try" : "tries"}.`,
      );
      claimFailures = 0;
      storeFailureLog.forget("claim");
    }
    claiming = false;
    if (claimed.length > 0) options.observer?.taken?.("claim", claimed.length);
    if (!running) {
      // Stopped while the claim was out: nobody will send these, so they go back at once.
      void giveBack(claimed.map((delivery) => ({ id: delivery.id, leaseUntil })));
      return;
    }
    for (const delivery of claimed) {
      hold(delivery, leaseUntil, { length: delivery.body.length, holders: 0 });
    }
    dispatch();
    if (!running) return;
    // More may be due: the batch was full, or a wake-up came meanwhile. (For the webhooks skipped,
    // finished() asks for a claim once they have room.)
    if (claimed.length === limit) claimDue = true;
    if (claimDue) {
      schedulePump();
      return;
    }
    // Nothing more is due now: sleep until the next due time, a wake-up, or the poll interval.
    if (!dueTimeStale && sleepTimer) return;
    dueTimeStale = false;
    let delay = pollIntervalMs;
    try {
      const next = await store.nextDueAt(clock.now());
      if (next !== undefined) delay = Math.min(Math.max(next - clock.now(), 25), pollIntervalMs);
    } catch {
      delay = pollIntervalMs;
    }
    sleep(delay);
  }

  /**
   * Frees the leases that ran out (a worker that died mid-attempt, or deliveries that waited in a
   * worker's queue past their lease), so their deliveries are sent again.
   */
  /** Whether the latest sweep failed, so that the next one that works says so. */
  let sweepFailing = false;
  function sweep(): void {
    store.releaseExpiredLeases(clock.now()).then(
      ({ expired, ofDeadWorkers, deadWorkers }) => {
        if (sweepFailing) {
          sweepFailing = false;
          storeFailureLog.forget("sweep");
          logger.info({}, "Freeing expired delivery leases works again.");
        }
        if (deadWorkers.length > 0) {
          logger.warn(
            { workers: deadWorkers, released: ofDeadWorkers },
            deadWorkersLine(deadWorkers, ofDeadWorkers),
          );
        }
        if (expired > 0) {
          logger.warn(
            { released: expired },
            `${expired === 1 ? "1 delivery was" : `${expired} deliveries were`} leased but not recorded before the lease ran out: a worker stopped answering, or had more waiting than it could send in time. ${expired === 1 ? "It is" : "They are"} back in the queue and will be sent; one that was mid-attempt may arrive twice.`,
          );
        }
        if (expired > 0 || ofDeadWorkers > 0) scheduleDueCheck();
      },
      (error: unknown) => {
        sweepFailing = true;
        if (storeFailureLog.due("sweep") === undefined) return;
        logger.error(
          { err: error },
          `Could not free expired delivery leases; trying again every 5 s. ${adviceFor(error)} This line repeats at most every 30 s, and a line says when it works again.`,
        );
      },
    );
  }

  /** Attempts answered per second, in all and by webhook. */
  const sendRate = answerRate(clock.now());
  const sendRateOf = new Map<string, AnswerRate>();
  function countAnswer(webhookId: string): void {
    sendRate.count();
    let rate = sendRateOf.get(webhookId);
    if (!rate) {
      if (sendRateOf.size >= 100_000) sendRateOf.clear();
      rate = answerRate(clock.now());
      sendRateOf.set(webhookId, rate);
    }
    rate.count();
  }

  /**
   * How many deliveries a slow receiver's webhook may hold (waiting and in flight) before the
   * deliveries this process commits for it are left to be claimed: two rounds, or what it answers
   * in half the time a lease leaves. Its line so stays short enough to be sent before its leases
   * run out, whatever pace the others keep. A webhook whose receiver answers is held only to the
   * worker's limit, which its own pace keeps up with.
   */
  function holdLimitOf(webhookId: string, now: number): number {
    if (answering(webhookId)) return Infinity;
    const pace = sendRateOf.get(webhookId)?.perSecond(now) ?? 0;
    return Math.max(2 * fullRound(webhookId), (pace * (leaseMs - timeoutMs)) / 2000);
  }

  /**
   * How many deliveries the worker may hold (waiting and in flight): no more than it sends well
   * within a lease at the pace it has shown, since what is held too long would have its lease run
   * out before it is sent. The pace shown: that of the last second when higher than the smoothed
   * one (a burst is taken at the pace it is sent at, not at the pace before it), and after a quiet
   * spell that of the last busy one. A worker whose pace falls holds more than it sends in time
   * only until it notices: what would be sent too late is given back before its lease runs out.
   */
  function holdCount(now: number): number {
    const pace = sendRate.shownPace(now) * ((leaseMs - timeoutMs) / 2000);
    return Math.min(holdLimit, Math.max(concurrency * 4, pace));
  }

  /**
   * Room for the deliveries of one event to `webhookIds`, whose body is `bodyLength` characters:
   * the webhooks whose deliveries it takes (those that hold enough already are left to be
   * claimed), or undefined when it takes none now.
   */
  function roomFor(
    webhookIds: readonly string[],
    bodyLength: number,
    now: number,
    countSlack = 1,
  ): Set<string> | undefined {
    dropLapsedReservations(now);
    // One event larger than the whole budget is still taken when nothing else is held.
    const held = heldBodyLength + reservedBodyLength;
    if (held > 0 && held + bodyLength > holdBodyLength) return undefined;
    if (inFlight + ready.length + webhookIds.length > holdCount(now) * countSlack) {
      return undefined;
    }
    const taken = new Set<string>();
    for (const webhookId of webhookIds) {
      if (ready.lengthOf(webhookId) + inFlightOf(webhookId) < holdLimitOf(webhookId, now)) {
        taken.add(webhookId);
      }
    }
    return taken.size === 0 ? undefined : taken;
  }

  /** Webhooks named in a room report at most: beyond this many, it reports no room at all. */
  const FULL_WEBHOOKS_LIMIT = 100;

  /** Takes the deliveries this process commits, so they go out without a claim query. */
  const taker: LocalDeliveryTaker = {
    workerId,
    reserve(webhookIds, bodyLength) {
      if (!running) return undefined;
      const now = clock.now();
      const taken = roomFor(webhookIds, bodyLength, now);
      if (!taken) return undefined;
      const leaseUntil = now + leaseMs;
      reserved.set(leaseUntil, (reserved.get(leaseUntil) ?? 0) + bodyLength);
      reservedBodyLength += bodyLength;
      return { leaseUntil, taken };
    },
    room() {
      if (!running) return undefined;
      const now = clock.now();
      dropLapsedReservations(now);
      // Only a webhook that does not answer has a hold limit: one with attempts in flight, or
      // whose latest attempt was slow. Read a few times a second, so the many webhooks that only
      // wait are not walked.
      const fullWebhooks = new Set<string>();
      for (const candidates of [inFlightTo.keys(), slowed.values()]) {
        for (const webhookId of candidates) {
          if (fullWebhooks.size > FULL_WEBHOOKS_LIMIT) break;
          if (ready.lengthOf(webhookId) + inFlightOf(webhookId) >= holdLimitOf(webhookId, now)) {
            fullWebhooks.add(webhookId);
          }
        }
      }
      const tooMany = fullWebhooks.size > FULL_WEBHOOKS_LIMIT;
      return {
        deliveries: tooMany ? 0 : Math.max(0, Math.floor(holdCount(now) - inFlight - ready.length)),
        bodyLength: Math.max(0, holdBodyLength - heldBodyLength - reservedBodyLength),
        leaseMs,
        fullWebhooks: tooMany ? [] : [...fullWebhooks],
      };
    },
    takeLeased(deliveries, leaseUntil) {
      if (!running) return deliveries;
      const now = clock.now();
      const left: ClaimedDelivery[] = [];
      // An event's deliveries come together and share its body, counted once.
      for (const group of consecutiveRuns(deliveries, (a, b) => a.eventId === b.eventId)) {
        const first = group[0] as ClaimedDelivery;
        // Leased against room told moments ago, which this worker's own claims may have filled
        // since: up to twice its usual hold is still sent well within the lease.
        const taken = roomFor(
          group.map((delivery) => delivery.webhookId),
          first.body.length,
          now,
          2,
        );
        const body: HeldBody = { length: first.body.length, holders: 0 };
        for (const delivery of group) {
          if (taken?.has(delivery.webhookId)) hold(delivery, leaseUntil, body);
          else left.push(delivery);
        }
      }
      if (left.length < deliveries.length) {
        options.observer?.taken?.("handed_over", deliveries.length - left.length);
        schedulePump();
      }
      return left;
    },
    take(deliveries, leaseUntil) {
      let body: HeldBody | undefined;
      deliveries.forEach((delivery, i) => {
        // The deliveries of one event share its body, reserved and counted once.
        if (i === 0 || delivery.body !== deliveries[i - 1]?.body) {
          body = { length: delivery.body.length, holders: 0 };
          unreserve(leaseUntil, body.length);
        }
        if (running && body) hold(delivery, leaseUntil, body);
      });
      if (!running) {
        giveBack(deliveries.map((delivery) => ({ id: delivery.id, leaseUntil })));
        return;
      }
      options.observer?.taken?.("own_commit", deliveries.length);
      // Started on the next turn, so the answers to the requests that committed them go out first.
      schedulePump();
    },
    untaken: scheduleClaim,
  };

  /** Hands back leases on deliveries this worker will not send, so others need not wait them out. */
  /**
   * Gives back a delivery whose attempt the stop cut off, unrecorded: its attempt count and due
   * time stay as they were, so the next worker to run sends it at once. Counted as recording, so
   * that the stop waits for it before the store closes.
   */
  async function releaseCutOff(lease: HeldLease): Promise<void> {
    recording++;
    try {
      await giveBack([lease]);
    } finally {
      doneRecording();
    }
  }

  /** One record (or give-back) fewer; a stop waiting for the worker to settle hears of the last. */
  function doneRecording(): void {
    recording--;
    if (inFlight === 0 && recording === 0) drained?.();
  }

  /** Resolves once no attempt is in flight or being recorded, or after `ms`. */
  async function settled(ms: number): Promise<void> {
    if (inFlight === 0 && recording === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    drained = undefined;
  }

  function giveBack(leases: HeldLease[]): Promise<void> {
    if (leases.length === 0) return Promise.resolve();
    return store.releaseLeases(leases, workerId).catch((error: unknown) => {
      logger.error(
        { err: error, deliveries: leases.length },
        `Could not give back ${leases.length} deliveries this worker will not send; they will be sent once their lease runs out. ${adviceFor(error)}`,
      );
    });
  }

  function sleep(ms: number): void {
    if (!running) return;
    if (sleepTimer) clearTimeout(sleepTimer);
    sleepTimer = setTimeout(() => {
      sleepTimer = undefined;
      scheduleDueCheck();
    }, ms);
    sleepTimer.unref();
  }

  return {
    async start() {
      if (running) return;
      running = true;
      // Alive before it holds any lease, so that no sweep takes this worker for a dead one.
      await store.markWorkerAlive(workerId);
      unsubscribe = wake.subscribe((changedWebhook) => {
        if (changedWebhook !== undefined) giveBackWaitingFor(changedWebhook);
        scheduleClaim();
      });
      store.setLocalTaker(taker);
      // A process started after a crash frees what its dead predecessor held, at once.
      sweep();
      scheduleDueCheck();
      sweepTimer = setInterval(sweep, Math.max(1000, Math.min(leaseMs / 2, SWEEP_INTERVAL_MS)));
      sweepTimer.unref();
    },

    async stop(graceMs) {
      running = false;
      store.setLocalTaker(undefined);
      // Claimed but never started: given back, to be claimed again at once.
      const unsent = giveBack(
        ready.takeAll().map(({ delivery, leaseUntil, body }) => {
          letGo(body);
          return { id: delivery.id, leaseUntil };
        }),
      );
      unsubscribe?.();
      if (sleepTimer) clearTimeout(sleepTimer);
      if (sweepTimer) clearInterval(sweepTimer);
      await unsent;
      await settled(graceMs);
      return inFlight;
    },

    settle: settled,

    inFlight: () => inFlight,
  };
}

/** The line that says workers were found dead, and what became of what they held. */
function deadWorkersLine(workers: string[], released: number): string {
  const one = workers.length === 1;
  const who = one ? `Worker ${workers[0]} has` : `Workers ${workers.join(", ")} have`;
  const held =
    released === 0
      ? `${one ? "It" : "They"} held no deliveries whose lease was still running (any whose lease had run out were back in the queue already).`
      : `${released === 1 ? "The 1 delivery" : `The ${released} deliveries`} ${one ? "it" : "they"} held ${released === 1 ? "is" : "are"} back in the queue and will be sent by the running workers; one that was mid-attempt may arrive twice.`;
  return `${who} stopped without signing off (a crash, a kill, or a lost connection that did not come back). ${held}`;
}

interface AnswerRate {
  count(): void;
  /** Answers a second, smoothed over a few seconds. */
  perSecond(now: number): number;
  /**
   * The pace the worker has shown it keeps: the highest of the last second's and the smoothed
   * pace, and of the smoothed pace within the last PEAK_PACE_MS.
   */
  shownPace(now: number): number;
}

/** How long a pace reached counts as one the worker can keep again. */
const PEAK_PACE_MS = 30_000;

function answerRate(start: number): AnswerRate {
  let answered = 0;
  let rate = 0;
  let latest = 0;
  let since = start;
  let peak = 0;
  let peakAt = Number.NEGATIVE_INFINITY;
  function perSecond(now: number): number {
    const elapsed = now - since;
    if (elapsed < 1000) return rate;
    const current = (answered * 1000) / elapsed;
    latest = elapsed > 3000 ? 0 : current;
    // After a quiet spell the old pace says nothing about the new one.
    rate = elapsed > 3000 ? current : (rate + current) / 2;
    answered = 0;
    since = now;
    if (rate >= peak || now - peakAt > PEAK_PACE_MS) {
      peak = rate;
      peakAt = now;
    }
    return rate;
  }
  return {
    count() {
      answered++;
    },
    perSecond,
    shownPace(now) {
      const smoothed = perSecond(now);
      return Math.max(smoothed, latest, now - peakAt <= PEAK_PACE_MS ? peak : 0);
    },
  };
}
