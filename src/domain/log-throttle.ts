/**
 * Holds back log lines that a flood of requests or a lasting outage would repeat: a line goes out at
 * most once per interval for each key, and says how many times it happened since the last one.
 */
export interface LogThrottle {
  /**
   * Counts one occurrence under `key`; returns how many occurred since the last line (this one
   * included) when a line is due now, or undefined when it is held back.
   */
  due(key: string): number | undefined;
  /** Ends what `key` held back, once the trouble is over: the next occurrence is logged at once. */
  forget(key: string): void;
  /**
   * The keys whose interval has passed with occurrences held back, and how many, as if a line
   * were written for each now: so that the end of a burst is logged too, by whoever asks.
   */
  held(): Array<{ key: string; count: number }>;
}

/** `maxKeys` bounds the keys kept: a flood of new ones clears them, and each is logged again. */
export function createLogThrottle(
  intervalMs: number,
  now: () => number,
  maxKeys = 1000,
): LogThrottle {
  const state = new Map<string, { loggedAt: number; count: number }>();
  return {
    due(key) {
      const at = now();
      const entry = state.get(key);
      if (entry === undefined) {
        if (state.size >= maxKeys) state.clear();
        state.set(key, { loggedAt: at, count: 0 });
        return 1;
      }
      entry.count++;
      if (at - entry.loggedAt < intervalMs) return undefined;
      const count = entry.count;
      entry.loggedAt = at;
      entry.count = 0;
      return count;
    },
    forget(key) {
      state.delete(key);
    },
    held() {
      const at = now();
      const out: Array<{ key: string; count: number }> = [];
      for (const [key, entry] of state) {
        if (entry.count === 0 || at - entry.loggedAt < intervalMs) continue;
        out.push({ key, count: entry.count });
        entry.loggedAt = at;
        entry.count = 0;
      }
      return out;
    },
  };
}
