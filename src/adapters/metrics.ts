/** Prometheus metrics of this process, served at /metrics. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { DeliveryObserver } from "../worker/delivery-worker.js";

export interface HeraldMetrics extends DeliveryObserver {
  registry: Registry;
  /** Reports attempts in flight when scraped. */
  trackInFlight(read: () => number): void;
  /** Reports, when scraped, how many delivery workers an `api` process hears from. */
  trackWorkersHeard(read: () => number): void;
}

/** Creates a registry with process metrics and Herald's delivery metrics. */
export function createMetrics(): HeraldMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "herald_" });
  const attempts = new Counter({
    name: "herald_delivery_attempts_total",
    help: "Delivery attempts by outcome: delivered (the receiver answered 2xx), retry (it failed and another attempt is scheduled) or give-up (it failed and the delivery is now failed for good).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of ["delivered", "retry", "give-up"] as const) attempts.inc({ outcome }, 0);
  const duration = new Histogram({
    name: "herald_delivery_attempt_duration_seconds",
    help: "Time from sending a delivery attempt to its complete response.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const taken = new Counter({
    name: "herald_deliveries_taken_total",
    help: "Deliveries this process's worker took to send, by how they reached it: claim (read from the database), own_commit (committed by this process), handed_over (leased to it by an api process).",
    labelNames: ["via"] as const,
    registers: [registry],
  });
  // Every way shows, at 0 until it happens, so a dashboard can tell none from unknown.
  for (const via of ["claim", "own_commit", "handed_over"] as const) taken.inc({ via }, 0);
  let readInFlight: () => number = () => 0;
  new Gauge({
    name: "herald_deliveries_in_flight",
    help: "Delivery attempts being sent right now.",
    registers: [registry],
    collect() {
      this.set(readInFlight());
    },
  });
  return {
    registry,
    attemptFinished(outcome, durationMs) {
      attempts.inc({ outcome });
      duration.observe(durationMs / 1000);
    },
    taken(via, deliveries) {
      taken.inc({ via }, deliveries);
    },
    trackInFlight(read) {
      readInFlight = read;
    },
    trackWorkersHeard(read) {
      new Gauge({
        name: "herald_delivery_workers_heard",
        help: "Delivery workers in other processes this api process heard from in the last 2.5 s. At 0, what it stores is not being delivered: start a process with HERALD_ROLE=worker (or all) on the same database.",
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    },
  };
}
