/** Percentiles, medians and number formatting for the bench report. */

export interface Percentiles {
  p50: number;
  p99: number;
}

/** Nearest-rank percentile `p` (0–100) of `sorted`, NaN when empty. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1] as number;
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** The middle value, or the mean of the two middle values; NaN when empty. */
export function median(values: readonly number[]): number {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  if (sorted.length % 2 === 1) return sorted[mid] as number;
  return sorted.length === 0
    ? Number.NaN
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** `value` with `digits` decimals and thousands separators; "-" for NaN. */
export function formatNumber(value: number, digits = 0): string {
  if (Number.isNaN(value)) return "-";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}
