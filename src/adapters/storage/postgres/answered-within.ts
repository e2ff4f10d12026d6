import type { QueryConfig } from "pg";

/** A statement given `ms` to answer instead of the pool's per-statement timeout. */
export function answeredWithin(ms: number, text: string, values?: unknown[]): QueryConfig {
  // node-postgres reads query_timeout per statement as well as per pool; its types leave it out.
  return { text, values, query_timeout: ms } as QueryConfig;
}
