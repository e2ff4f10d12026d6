/** The two measurements, each run against Herald in one layout or against its baseline. */
import { setTimeout as sleep } from "node:timers/promises";
import { Helper } from "./children.js";
import {
  fireTriggers,
  fireTriggersAtRate,
  type IngestRun,
  postSignedBodies,
  type TriggerRun,
} from "./load.js";
import type { ReceiverReport } from "./shared.js";
import { type Percentiles, percentiles } from "./stats.js";
import {
  API_KEY,
  type DeliveryTarget,
  type HeraldLayout,
  type HeraldSettings,
  INCOMING_SECRET,
  INGEST_PATH,
  startBaselineDispatcher,
  startDurableFloor,
  startDurableOutbox,
  startHerald,
  startHeraldWithWebhooks,
  startSink,
  type Target,
  TRIGGER_PATH,
} from "./targets.js";

export const WEBHOOKS = 10;
export const TRIGGERS = 2_000;
/** Triggers sent before the delivery measurement and not counted. */
export const WARMUP_TRIGGERS = 500;
/** Concurrent clients of the load generator, unless --clients says otherwise. */
export const CLIENTS = 32;
/** Herald's default HERALD_DELIVERY_CONCURRENCY, used as the baseline's connections. */
const BASELINE_CONNECTIONS = 64;
export const INGEST_DURATION_MS = 5_000;
export const INGEST_BODY_BYTES = 1024;
/** Waiting for deliveries ends when none arrived for this long, or after the time limit. */
const DELIVERY_IDLE_LIMIT_MS = 15_000;
const DELIVERY_TIME_LIMIT_MS = 180_000;

/** A system under test: Herald in one layout, or the baseline. */
export interface System {
  /** Its name in progress lines. */
  name: string;
  /** Its column heading, narrow so the table fits a terminal. */
  column: string;
  /** Undefined for the baseline and the durable floor. */
  herald: HeraldLayout | undefined;
  /** True for the durable floor, a reference that is neither Herald nor the baseline. */
  floor?: true;
}

export const SQLITE: System = {
  name: "SQLite",
  column: "SQLite",
  herald: { store: "sqlite", workers: 0 },
};
export const PG_ONE_PROCESS: System = {
  name: "PostgreSQL 1 process",
  column: "PG 1 proc",
  herald: { store: "postgres", workers: 0 },
};
export const PG_API_1_WORKER: System = {
  name: "PostgreSQL api + 1 worker",
  column: "PG api+1w",
  herald: { store: "postgres", workers: 1 },
};
export const PG_API_2_WORKERS: System = {
  name: "PostgreSQL api + 2 workers",
  column: "PG api+2w",
  herald: { store: "postgres", workers: 2 },
};
export const BASELINE: System = { name: "baseline", column: "baseline", herald: undefined };
/**
 * The least a durable system does: for delivery, the baseline dispatcher plus SQLite group commits
 * of each trigger's deliveries and of their outcomes (durable-outbox.ts); for ingest, node:http +
 * HMAC + SQLite group commit under a unique key (durable-sink.ts).
 */
export const DURABLE_FLOOR: System = {
  name: "durable floor",
  column: "floor",
  herald: undefined,
  floor: true,
};

export type ReceiverMode = "process" | "thread";

export interface MeasureOptions {
  receiver: ReceiverMode;
  /** Concurrent clients sending triggers or incoming webhooks. */
  clients: number;
  herald: HeraldSettings;
}

/** What both delivery measures report: latency, and what the receiver counted. */
export interface DeliveryOutcome {
  trigger: Percentiles;
  endToEnd: Percentiles;
  missing: number;
  duplicates: number;
  badSignatures: number;
}

export interface DeliveryResult extends DeliveryOutcome {
  deliveriesPerSecond: number;
  /** CPU time of the dispatcher (all of Herald's processes, or the reference's) per delivery, in µs. */
  cpuPerDeliveryUs: number;
  /** CPU time of the database server per delivery, in µs; NaN without a server of its own. */
  databaseCpuPerDeliveryUs: number;
  /** Share of the delivery time the receiver's event loop was busy: near 1, it was the bound. */
  receiverBusy: number;
  /** Herald's deliveries of the run by how its workers took them (see Target.takenVia). */
  takenVia?: Record<string, number>;
  /** With several processes, each one's role and CPU time per delivery in µs. */
  cpuPerDeliveryByProcess?: Array<[string, number]>;
}

export interface IngestResult {
  requestsPerSecond: number;
  latency: Percentiles;
  non200: number;
  /** CPU time of the server's processes per request answered 200, in µs. */
  cpuPerRequestUs: number;
  /** CPU time of the database server per request answered 200, in µs; NaN without one. */
  databaseCpuPerRequestUs: number;
}

/** CPU µs per unit of work between two readings of a process's CPU ms; NaN when unknown. */
function cpuPerUnitUs(before: number | undefined, after: number | undefined, units: number) {
  if (before === undefined || after === undefined || units === 0) return Number.NaN;
  return ((after - before) * 1000) / units;
}

/** Waits until the receiver has `expected` unique deliveries or none arrived for a while. */
async function awaitDeliveries(receiver: Helper, expected: number): Promise<void> {
  const deadline = Date.now() + DELIVERY_TIME_LIMIT_MS;
  let seen = -1;
  let lastProgress = Date.now();
  while (Date.now() < deadline) {
    const { unique } = await receiver.request({ type: "progress" }, "progress");
    if (unique >= expected) return;
    if (unique !== seen) {
      seen = unique;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > DELIVERY_IDLE_LIMIT_MS) return;
    await sleep(50);
  }
}

function summarizeDelivery(
  triggers: TriggerRun,
  report: ReceiverReport,
  paths: ReadonlySet<string>,
  cpuMs: [number | undefined, number | undefined],
  databaseCpuMs: [number | undefined, number | undefined],
): DeliveryResult {
  const endToEnd: number[] = [];
  let lastArrival = Number.NEGATIVE_INFINITY;
  for (const [path, n, arrivedAt] of report.arrivals) {
    const sentAt = triggers.sentAt[n];
    if (!paths.has(path) || sentAt === undefined) continue;
    endToEnd.push(arrivedAt - sentAt);
    lastArrival = Math.max(lastArrival, arrivedAt);
  }
  const firstSent = triggers.sentAt.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  const seconds = (lastArrival - firstSent) / 1000;
  return {
    deliveriesPerSecond: endToEnd.length > 0 ? endToEnd.length / seconds : 0,
    trigger: percentiles(triggers.latencies),
    endToEnd: percentiles(endToEnd),
    missing: paths.size * triggers.sentAt.length - endToEnd.length,
    duplicates: report.duplicates,
    badSignatures: report.badSignatures,
    cpuPerDeliveryUs: cpuPerUnitUs(...cpuMs, endToEnd.length),
    databaseCpuPerDeliveryUs: cpuPerUnitUs(...databaseCpuMs, endToEnd.length),
    receiverBusy: report.busyShare,
  };
}

function warnAboutFailures(what: string, run: TriggerRun | IngestRun, malformed = 0): void {
  if (run.failed > 0) {
    console.warn(`  ${what}: ${run.failed} requests failed, first: ${run.firstFailure}`);
  }
  if (malformed > 0) console.warn(`  ${what}: ${malformed} deliveries had no numeric data.n`);
}

/**
 * Starts the receiver and `system` with one webhook per receiver path, configured and warmed up
 * alike for every system, runs `measure`, and stops both.
 */
async function withDeliveryTarget<T>(
  system: System,
  options: MeasureOptions,
  warmUp: (target: DeliveryTarget) => Promise<TriggerRun>,
  measure: (target: DeliveryTarget, receiver: Helper) => Promise<T>,
): Promise<T> {
  const receiver = await Helper.start("./receiver.ts", options.receiver);
  try {
    const urls = Array.from({ length: WEBHOOKS }, (_, i) => `${receiver.url}/hook/${i}`);
    const target: DeliveryTarget = system.herald
      ? await startHeraldWithWebhooks(urls, { ...options.herald, ...system.herald })
      : system.floor
        ? await startDurableOutbox(urls, BASELINE_CONNECTIONS)
        : await startBaselineDispatcher(urls, BASELINE_CONNECTIONS);
    try {
      await receiver.helper.request({ type: "configure", secrets: target.secrets }, "configured");
      // Every system gets the same warm-up, so the figures are of steady state, not of the JIT starting.
      const warmUpRun = await warmUp(target);
      await awaitDeliveries(receiver.helper, warmUpRun.sentAt.length * WEBHOOKS);
      await receiver.helper.request({ type: "reset" }, "reset");
      return await measure(target, receiver.helper);
    } finally {
      await target.stop();
    }
  } finally {
    await receiver.helper.stop();
  }
}

export async function measureDelivery(
  system: System,
  options: MeasureOptions,
): Promise<DeliveryResult> {
  return withDeliveryTarget(
    system,
    options,
    (target) =>
      fireTriggers(target.origin, TRIGGER_PATH, API_KEY, WARMUP_TRIGGERS, options.clients),
    async (target, receiver) => {
      // Read over HTTP, outside the CPU readings.
      const takenBefore = await target.takenVia?.();
      const cpuBefore = target.cpuMs();
      const databaseCpuBefore = target.databaseCpuMs?.();
      const byProcessBefore = target.cpuMsByProcess?.();
      const triggers = await fireTriggers(
        target.origin,
        TRIGGER_PATH,
        API_KEY,
        TRIGGERS,
        options.clients,
      );
      await awaitDeliveries(receiver, TRIGGERS * WEBHOOKS);
      const cpuAfter = target.cpuMs();
      const databaseCpuAfter = target.databaseCpuMs?.();
      const byProcessAfter = target.cpuMsByProcess?.();
      const takenAfter = await target.takenVia?.();
      const { report } = await receiver.request({ type: "report" }, "report");
      warnAboutFailures(`delivery ${system.name}`, triggers, report.malformed);
      const paths = new Set(Object.keys(target.secrets));
      const result = summarizeDelivery(
        triggers,
        report,
        paths,
        [cpuBefore, cpuAfter],
        [databaseCpuBefore, databaseCpuAfter],
      );
      if (takenBefore && takenAfter) {
        result.takenVia = Object.fromEntries(
          Object.entries(takenAfter).map(([via, n]) => [via, n - (takenBefore[via] ?? 0)]),
        );
      }
      if (byProcessBefore && byProcessAfter) {
        result.cpuPerDeliveryByProcess = byProcessAfter.map(([role, after], i) => [
          role,
          cpuPerUnitUs(byProcessBefore[i]?.[1], after, TRIGGERS * WEBHOOKS - result.missing),
        ]);
      }
      return result;
    },
  );
}

/** How long the steady measurement sends triggers, and its warm-up before. */
export const STEADY_SECONDS = 8;
const STEADY_WARMUP_SECONDS = 2;

export interface SteadyResult extends DeliveryOutcome {
  /** CPU time of all the system's threads per delivery, in µs. */
  cpuPerDeliveryUs: number;
  /** CPU time of its main threads alone per delivery, in µs. */
  mainThreadPerDeliveryUs: number;
  /** CPU time of the database server per delivery, in µs; NaN without a server of its own. */
  databaseCpuPerDeliveryUs: number;
}

/**
 * Delivery below saturation: triggers at a steady `rate` per second for STEADY_SECONDS, so the
 * CPU each delivery costs is read without the box's contention blurring it, and latency is that
 * of a system with room to spare.
 */
export async function measureSteady(
  system: System,
  options: MeasureOptions,
  rate: number,
): Promise<SteadyResult> {
  const fire = (target: DeliveryTarget, seconds: number) =>
    fireTriggersAtRate(target.origin, TRIGGER_PATH, API_KEY, Math.round(rate * seconds), {
      rate,
      clients: options.clients,
    });
  return withDeliveryTarget(
    system,
    options,
    (target) => fire(target, STEADY_WARMUP_SECONDS),
    async (target, receiver) => {
      const before = [target.cpuMs(), target.mainThreadCpuMs(), target.databaseCpuMs?.()];
      const triggers = await fire(target, STEADY_SECONDS);
      await awaitDeliveries(receiver, triggers.sentAt.length * WEBHOOKS);
      const after = [target.cpuMs(), target.mainThreadCpuMs(), target.databaseCpuMs?.()];
      const { report } = await receiver.request({ type: "report" }, "report");
      warnAboutFailures(`steady ${system.name}`, triggers, report.malformed);
      const paths = new Set(Object.keys(target.secrets));
      const outcome = summarizeDelivery(
        triggers,
        report,
        paths,
        [before[0], after[0]],
        [before[2], after[2]],
      );
      const delivered = paths.size * triggers.sentAt.length - outcome.missing;
      return { ...outcome, mainThreadPerDeliveryUs: cpuPerUnitUs(before[1], after[1], delivered) };
    },
  );
}

/** Load sent before the ingest measurement and not counted. */
const INGEST_WARMUP_MS = 1500;

export async function measureIngest(
  system: System,
  options: MeasureOptions,
): Promise<IngestResult> {
  const target: Target = system.herald
    ? await startHerald({ ...options.herald, ...system.herald })
    : system.floor
      ? await startDurableFloor()
      : await startSink();
  try {
    // Every system gets the same warm-up, so the figures are of steady state, not of the JIT starting.
    await postSignedBodies(target.origin, INGEST_PATH, INCOMING_SECRET, {
      clients: options.clients,
      durationMs: INGEST_WARMUP_MS,
      bodyBytes: INGEST_BODY_BYTES,
    });
    const cpuBefore = target.cpuMs();
    const databaseCpuBefore = target.databaseCpuMs?.();
    const run = await postSignedBodies(target.origin, INGEST_PATH, INCOMING_SECRET, {
      clients: options.clients,
      durationMs: INGEST_DURATION_MS,
      bodyBytes: INGEST_BODY_BYTES,
    });
    const cpuPerRequestUs = cpuPerUnitUs(cpuBefore, target.cpuMs(), run.ok);
    const databaseCpuPerRequestUs = cpuPerUnitUs(
      databaseCpuBefore,
      target.databaseCpuMs?.(),
      run.ok,
    );
    warnAboutFailures(`ingest ${system.name}`, run);
    return {
      requestsPerSecond: run.ok / (run.elapsedMs / 1000),
      latency: percentiles(run.latencies),
      non200: run.failed,
      cpuPerRequestUs,
      databaseCpuPerRequestUs,
    };
  } finally {
    await target.stop();
  }
}
