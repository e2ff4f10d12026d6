/** The bench's output: one line per measurement and the table of medians. */
import { cpus, platform, release } from "node:os";
import {
  type DeliveryOutcome,
  type DeliveryResult,
  INGEST_BODY_BYTES,
  INGEST_DURATION_MS,
  type IngestResult,
  type ReceiverMode,
  STEADY_SECONDS,
  type SteadyResult,
  type System,
  TRIGGERS,
  WEBHOOKS,
} from "./measure.js";
import { formatNumber, median } from "./stats.js";

const ms = (value: number) => `${formatNumber(value, 1)} ms`;

/** ", database server CPU n µs/<unit>" when the system has a database server of its own. */
const databaseCpu = (us: number, unit: string) =>
  Number.isNaN(us) ? "" : `, database server CPU ${formatNumber(us)} µs/${unit}`;

const TAKEN_VIA: Record<string, string> = {
  own_commit: "by their own process's commit",
  handed_over: "handed over",
  claim: "claimed",
};

/** ", taken n% handed over, n% claimed…" for Herald, whose workers count how they took each. */
function takenVia(r: DeliveryResult): string {
  const taken = Object.entries(r.takenVia ?? {}).filter(([, n]) => n > 0);
  const total = taken.reduce((sum, [, n]) => sum + n, 0);
  if (total === 0) return "";
  const shares = taken.map(
    ([via, n]) => `${formatNumber((n / total) * 100)}% ${TAKEN_VIA[via] ?? via}`,
  );
  return `, deliveries taken ${shares.join(", ")}`;
}

/** " (api n, worker n, …)" when Herald ran as several processes. */
function byProcess(r: DeliveryResult): string {
  const shares = r.cpuPerDeliveryByProcess ?? [];
  if (shares.length === 0) return "";
  return ` (${shares.map(([role, us]) => `${role} ${formatNumber(us)}`).join(", ")})`;
}

export function describeDelivery(r: DeliveryResult): string {
  return `${formatNumber(r.deliveriesPerSecond)} deliveries/s, trigger p50 ${ms(r.trigger.p50)} p99 ${ms(r.trigger.p99)}, end-to-end p50 ${ms(r.endToEnd.p50)} p99 ${ms(r.endToEnd.p99)}, missing ${r.missing}, duplicates ${r.duplicates}, bad signatures ${r.badSignatures}, CPU ${formatNumber(r.cpuPerDeliveryUs)} µs/delivery${byProcess(r)}${databaseCpu(r.databaseCpuPerDeliveryUs, "delivery")}, receiver ${formatNumber(r.receiverBusy * 100)}% busy${takenVia(r)}`;
}

export function describeSteady(r: SteadyResult): string {
  return `CPU ${formatNumber(r.cpuPerDeliveryUs)} µs/delivery (main thread ${formatNumber(r.mainThreadPerDeliveryUs)})${databaseCpu(r.databaseCpuPerDeliveryUs, "delivery")}, trigger p50 ${ms(r.trigger.p50)} p99 ${ms(r.trigger.p99)}, end-to-end p50 ${ms(r.endToEnd.p50)} p99 ${ms(r.endToEnd.p99)}, missing ${r.missing}, duplicates ${r.duplicates}, bad signatures ${r.badSignatures}`;
}

export function describeIngest(r: IngestResult): string {
  return `${formatNumber(r.requestsPerSecond)} req/s, p50 ${ms(r.latency.p50)} p99 ${ms(r.latency.p99)}, non-200 ${r.non200}, CPU ${formatNumber(r.cpuPerRequestUs)} µs/request${databaseCpu(r.databaseCpuPerRequestUs, "request")}`;
}

/**
 * How a row is shown: a figure is the median with its ratios, a count the worst run, context the
 * median without ratios.
 */
type RowKind = "figure" | "count" | "context";

/** A table row: one value per run for each system measured. */
interface Row {
  label: string;
  values: Map<System, number[]>;
  digits: number;
  kind: RowKind;
}

type RowSpec<R> = [label: string, pick: (result: R) => number, digits: number, kind: RowKind];

export function rows<R>(prefix: string, results: Map<System, R[]>, specs: RowSpec<R>[]): Row[] {
  return specs.map(([label, pick, digits, kind]) => ({
    label: `${prefix} ${label}`,
    values: new Map([...results].map(([system, runs]) => [system, runs.map(pick)])),
    digits,
    kind,
  }));
}

const latencyRows = <R extends DeliveryOutcome>(): RowSpec<R>[] => [
  ["trigger p50 ms", (r) => r.trigger.p50, 1, "figure"],
  ["trigger p99 ms", (r) => r.trigger.p99, 1, "figure"],
  ["end-to-end p50 ms", (r) => r.endToEnd.p50, 1, "figure"],
  ["end-to-end p99 ms", (r) => r.endToEnd.p99, 1, "figure"],
];

const countRows = <R extends DeliveryOutcome>(): RowSpec<R>[] => [
  ["missing", (r) => r.missing, 0, "count"],
  ["duplicates", (r) => r.duplicates, 0, "count"],
  ["bad signatures", (r) => r.badSignatures, 0, "count"],
];

export const DELIVERY_ROWS: RowSpec<DeliveryResult>[] = [
  ["deliveries/s", (r) => r.deliveriesPerSecond, 0, "figure"],
  ...latencyRows<DeliveryResult>(),
  ["CPU µs/delivery", (r) => r.cpuPerDeliveryUs, 0, "figure"],
  ["database server CPU µs/delivery", (r) => r.databaseCpuPerDeliveryUs, 0, "context"],
  ["receiver busy %", (r) => r.receiverBusy * 100, 0, "context"],
  ...countRows<DeliveryResult>(),
];

export const STEADY_ROWS: RowSpec<SteadyResult>[] = [
  ["CPU µs/delivery", (r) => r.cpuPerDeliveryUs, 0, "figure"],
  ["main thread µs/delivery", (r) => r.mainThreadPerDeliveryUs, 0, "figure"],
  ["database server CPU µs/delivery", (r) => r.databaseCpuPerDeliveryUs, 0, "context"],
  ...latencyRows<SteadyResult>(),
  ...countRows<SteadyResult>(),
];

export const INGEST_ROWS: RowSpec<IngestResult>[] = [
  ["requests/s", (r) => r.requestsPerSecond, 0, "figure"],
  ["p50 ms", (r) => r.latency.p50, 1, "figure"],
  ["p99 ms", (r) => r.latency.p99, 1, "figure"],
  ["CPU µs/request", (r) => r.cpuPerRequestUs, 0, "figure"],
  ["database server CPU µs/request", (r) => r.databaseCpuPerRequestUs, 0, "context"],
  ["non-200", (r) => r.non200, 0, "count"],
];

/** What the table's heading says about the run. */
export interface RunContext {
  runs: number;
  clients: number;
  receiver: ReceiverMode;
  /** Triggers a second of the steady measurement; 0 when it was skipped. */
  steady: number;
  /** The largest share of the box that other programs kept busy before a measurement. */
  busiest: number;
}

/**
 * A ratio column: `over` divided by `under`, run by run, and the median of those. The systems of
 * one run are measured back to back, so a slow spell of the box weighs on both sides of a ratio.
 */
interface Ratio {
  over: System;
  under: System;
}

/**
 * Each Herald column and the durable floor against the baseline, and each PostgreSQL layout
 * against SQLite.
 */
function ratios(systems: System[]): Ratio[] {
  const baseline = systems.find((s) => s.herald === undefined && !s.floor);
  const sqlite = systems.find((s) => s.herald?.store === "sqlite");
  const list: Ratio[] = [];
  if (baseline) {
    for (const over of systems) {
      if (over.herald || over.floor) list.push({ over, under: baseline });
    }
  }
  if (sqlite) {
    for (const over of systems) {
      if (over.herald?.store === "postgres") list.push({ over, under: sqlite });
    }
  }
  return list;
}

/** The median of the run-by-run ratios of two systems' values; undefined without paired runs. */
function pairedRatio(over: number[] | undefined, under: number[] | undefined): number | undefined {
  if (!over || !under || over.length === 0 || over.length !== under.length) return undefined;
  return median(over.map((value, run) => value / (under[run] as number)));
}

/** Prints the table: one column per system of `systems`, in that order, then the ratio columns. */
export function printTable(rows: Row[], systems: System[], context: RunContext): void {
  const cpu = cpus();
  console.log(
    `\nMachine: ${cpu.length} cores (${cpu[0]?.model ?? "unknown"}), Node ${process.version}, ${platform()} ${release()}`,
  );
  if (context.busiest > 0.1) {
    console.log(
      `Other programs kept the box up to ${formatNumber(context.busiest * 100)}% busy between measurements: expect lower, noisier figures.`,
    );
  }
  console.log(
    `Medians of ${context.runs} run(s); counts are the worst run; a ratio is the median of the runs' own ratios. Delivery: ${TRIGGERS} triggers × ${WEBHOOKS} webhooks, ${context.clients} clients. Ingest: ${INGEST_BODY_BYTES} B signed bodies, ${context.clients} clients, ${INGEST_DURATION_MS / 1000} s. Receiver: ${context.receiver}.${context.steady > 0 ? ` Steady: ${context.steady} triggers/s × ${WEBHOOKS} webhooks for ${STEADY_SECONDS} s, ${context.clients} connections.` : ""}`,
  );
  const heralds = systems.filter((s) => s.herald);
  // PostgreSQL does part of Herald's work in its own server: a row of its own.
  const serverCpu = heralds.some((s) => s.herald?.store === "postgres")
    ? " (the PostgreSQL server's is the database server row, when the server runs on this machine)"
    : "";
  console.log(
    `Herald: ${heralds.map((s) => (s.column === s.name ? s.name : `${s.column} = ${s.name}`)).join(", ")}; CPU is that of all its processes${serverCpu}.`,
  );
  if (systems.some((s) => s.floor)) {
    console.log(
      "floor = durable floor, the least a durable system does here. Delivery: the baseline dispatcher, plus each trigger's event and delivery rows committed before the 200 and each delivery's outcome committed after its answer (SQLite group commit, WAL, synchronous=FULL). Ingest: node:http, the HMAC checked, body and headers stored under a unique key by the same group commit, 200 after the commit. Nothing else.",
    );
  }
  const ratioColumns = ratios(systems);
  // Ratio headings take two lines ("SQLite" over "/baseline") to keep the columns narrow.
  const headings: [string, string][] = [
    ["measure", ""],
    ...systems.map((s): [string, string] => [s.column, ""]),
    ...ratioColumns.map((r): [string, string] => [r.over.column, `/${r.under.column}`]),
  ];
  // A row no system has a figure for (the database server's, without PostgreSQL) is left out.
  const shown = rows.filter((row) =>
    [...row.values.values()].some((runs) => runs.some((v) => !Number.isNaN(v))),
  );
  const table = shown.map((row) => {
    const aggregate = row.kind === "count" ? (v: number[]) => Math.max(...v) : median;
    const value = (system: System) => {
      const runs = row.values.get(system);
      return runs === undefined || runs.length === 0 ? undefined : aggregate(runs);
    };
    return [
      row.label,
      ...systems.map((s) => {
        const v = value(s);
        return v === undefined ? "" : formatNumber(v, row.digits);
      }),
      ...ratioColumns.map(({ over, under }) => {
        const ratio =
          row.kind === "figure"
            ? pairedRatio(row.values.get(over), row.values.get(under))
            : undefined;
        return ratio === undefined ? "" : formatNumber(ratio, 2);
      }),
    ];
  });
  const widths = headings.map((heading, i) =>
    Math.max(...heading.map((h) => h.length), ...table.map((cells) => cells[i]!.length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  console.log(line(headings.map((h) => h[0])));
  console.log(line(headings.map((h) => h[1])));
  for (const cells of table) console.log(line(cells));
}
