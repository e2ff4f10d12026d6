/** The bench's output: one line per measurement and the table of medians. */
import { cpus, platform, release } from "node:os";
import {
  CLIENTS,
  type DeliveryResult,
  INGEST_BODY_BYTES,
  INGEST_DURATION_MS,
  type IngestResult,
  type ReceiverMode,
  type System,
  TRIGGERS,
  WEBHOOKS,
} from "./measure.js";
import { formatNumber, median } from "./stats.js";

const ms = (value: number) => `${formatNumber(value, 1)} ms`;

export function describeDelivery(r: DeliveryResult): string {
  return `${formatNumber(r.deliveriesPerSecond)} deliveries/s, trigger p50 ${ms(r.trigger.p50)} p99 ${ms(r.trigger.p99)}, end-to-end p50 ${ms(r.endToEnd.p50)} p99 ${ms(r.endToEnd.p99)}, missing ${r.missing}, duplicates ${r.duplicates}, bad signatures ${r.badSignatures}, CPU ${formatNumber(r.cpuPerDeliveryUs)} µs/delivery, receiver ${formatNumber(r.receiverBusy * 100)}% busy`;
}

export function describeIngest(r: IngestResult): string {
  return `${formatNumber(r.requestsPerSecond)} req/s, p50 ${ms(r.latency.p50)} p99 ${ms(r.latency.p99)}, non-200 ${r.non200}, CPU ${formatNumber(r.cpuPerRequestUs)} µs/request`;
}

/**
 * How a row is shown: a figure is the median with the Herald/baseline ratio, a count the worst
 * run, context the median without a ratio.
 */
type RowKind = "figure" | "count" | "context";

/** A table row: one value per run for each system. */
interface Row {
  label: string;
  herald: number[];
  baseline: number[];
  digits: number;
  kind: RowKind;
}

type RowSpec<R> = [label: string, pick: (result: R) => number, digits: number, kind: RowKind];

export function rows<R>(prefix: string, results: Record<System, R[]>, specs: RowSpec<R>[]): Row[] {
  return specs.map(([label, pick, digits, kind]) => ({
    label: `${prefix} ${label}`,
    herald: results.herald.map(pick),
    baseline: results.baseline.map(pick),
    digits,
    kind,
  }));
}

export const DELIVERY_ROWS: RowSpec<DeliveryResult>[] = [
  ["deliveries/s", (r) => r.deliveriesPerSecond, 0, "figure"],
  ["trigger p50 ms", (r) => r.trigger.p50, 1, "figure"],
  ["trigger p99 ms", (r) => r.trigger.p99, 1, "figure"],
  ["end-to-end p50 ms", (r) => r.endToEnd.p50, 1, "figure"],
  ["end-to-end p99 ms", (r) => r.endToEnd.p99, 1, "figure"],
  ["CPU µs/delivery", (r) => r.cpuPerDeliveryUs, 0, "figure"],
  ["receiver busy %", (r) => r.receiverBusy * 100, 0, "context"],
  ["missing", (r) => r.missing, 0, "count"],
  ["duplicates", (r) => r.duplicates, 0, "count"],
  ["bad signatures", (r) => r.badSignatures, 0, "count"],
];

export const INGEST_ROWS: RowSpec<IngestResult>[] = [
  ["requests/s", (r) => r.requestsPerSecond, 0, "figure"],
  ["p50 ms", (r) => r.latency.p50, 1, "figure"],
  ["p99 ms", (r) => r.latency.p99, 1, "figure"],
  ["CPU µs/request", (r) => r.cpuPerRequestUs, 0, "figure"],
  ["non-200", (r) => r.non200, 0, "count"],
];

/** What the table's heading says about the run. */
export interface RunContext {
  runs: number;
  receiver: ReceiverMode;
  /** The largest share of the box that other programs kept busy before a measurement. */
  busiest: number;
}

export function printTable(rows: Row[], context: RunContext): void {
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
    `Medians of ${context.runs} run(s); counts are the worst run. Delivery: ${TRIGGERS} triggers × ${WEBHOOKS} webhooks, ${CLIENTS} clients. Ingest: ${INGEST_BODY_BYTES} B signed bodies, ${CLIENTS} clients, ${INGEST_DURATION_MS / 1000} s. Receiver: ${context.receiver}.`,
  );
  const table = rows.map((row) => {
    const aggregate = row.kind === "count" ? (v: number[]) => Math.max(...v) : median;
    const herald = aggregate(row.herald);
    const baseline = aggregate(row.baseline);
    return {
      measure: row.label,
      Herald: formatNumber(herald, row.digits),
      baseline: formatNumber(baseline, row.digits),
      "Herald/baseline": row.kind === "figure" ? formatNumber(herald / baseline, 2) : "",
    };
  });
  const columns = ["measure", "Herald", "baseline", "Herald/baseline"] as const;
  const widths = columns.map((c) => Math.max(c.length, ...table.map((t) => t[c].length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ");
  console.log(line([...columns]));
  for (const t of table) console.log(line(columns.map((c) => t[c])));
}
