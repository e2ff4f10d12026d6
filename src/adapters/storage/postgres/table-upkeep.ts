/**
 * Vacuum and analyze of Herald's tables, for a server whose autovacuum is off. Every row of the
 * deliveries table changes within seconds of its insert; without vacuum its dead versions and
 * their index entries pile up, and without fresh statistics the planner takes a backlog of a
 * million rows for a handful and reads all of it at each claim. The thresholds are autovacuum's
 * own defaults; one process at a time does the work (an advisory lock per schema).
 */
import type pg from "pg";
import type { Logger } from "../../../domain/ports.js";
import { answeredWithin } from "./answered-within.js";

/** The tables Herald writes; fixed names, so they are safe to put in a statement. */
const TABLES = [
  "deliveries",
  "delivery_attempts",
  "events",
  "incoming_events",
  "webhooks",
  "herald_workers",
] as const;

/** A vacuum of a large table takes a while; it holds no lock that stops Herald's own statements. */
const UPKEEP_STATEMENT_TIMEOUT_MS = 30 * 60_000;

/**
 * What needs doing, by autovacuum's default rules: a vacuum once dead rows pass 50 + 20 % of the
 * live ones, an analyze once changes since the last one pass 50 + 10 %.
 */
const DUE_TABLES = `SELECT relname AS table,
    n_dead_tup > 50 + 0.2 * n_live_tup AS vacuum,
    n_mod_since_analyze > 50 + 0.1 * n_live_tup AS analyze
  FROM pg_stat_user_tables
  WHERE schemaname = current_schema() AND relname = ANY($1::text[])`;

const LOCK = "hashtext(current_schema() || '.herald_table_upkeep')";

export interface TableUpkeep {
  /** Checks the tables now and does what is due; resolves when done (or skipped: another does it). */
  runOnce(): Promise<void>;
  /** Stops the checks, after the one running ends. */
  stop(): Promise<void>;
}

/**
 * Starts checking Herald's tables every `intervalMs` when the server's autovacuum is off, saying so
 * once; undefined when autovacuum is on, and PostgreSQL does this itself.
 */
export async function startTableUpkeep(
  pool: pg.Pool,
  intervalMs: number,
  logger: Logger | undefined,
): Promise<TableUpkeep | undefined> {
  const { rows } = await pool.query<{ on: string }>("SELECT current_setting('autovacuum') AS on");
  if (rows[0]?.on === "on") return undefined;
  logger?.warn(
    { intervalMs },
    "PostgreSQL's autovacuum is off, so nothing clears the dead rows that a delivery queue leaves or keeps the planner's statistics fresh: Herald vacuums and analyzes its own tables when they need it. To leave this to PostgreSQL, set autovacuum = on in postgresql.conf and reload the server.",
  );

  let failing = false;
  let stopping = false;
  /** The server process of the session running a vacuum, so that stopping can cancel it. */
  let busyPid: number | undefined;
  async function check(): Promise<void> {
    const client = await pool.connect();
    busyPid = (client as unknown as { processID?: number }).processID;
    try {
      const { rows: locked } = await client.query<{ got: boolean }>(
        `SELECT pg_try_advisory_lock(${LOCK}) AS got`,
      );
      if (!locked[0]?.got) return;
      try {
        const { rows: due } = await client.query<{
          table: string;
          vacuum: boolean;
          analyze: boolean;
        }>(DUE_TABLES, [TABLES]);
        for (const { table, vacuum, analyze } of due) {
          if (!vacuum && !analyze) continue;
          const statement = vacuum ? `VACUUM (ANALYZE) "${table}"` : `ANALYZE "${table}"`;
          const started = Date.now();
          await client.query(answeredWithin(UPKEEP_STATEMENT_TIMEOUT_MS, statement));
          logger?.debug({ table, ms: Date.now() - started }, `Ran ${statement}.`);
        }
      } finally {
        await client.query(`SELECT pg_advisory_unlock(${LOCK})`);
      }
      if (failing) {
        failing = false;
        logger?.info({}, "Vacuum and analyze of Herald's tables work again.");
      }
    } finally {
      busyPid = undefined;
      client.release();
    }
  }

  let running: Promise<void> | undefined;
  const runOnce = (): Promise<void> => {
    running ??= check()
      .catch((error: unknown) => {
        // Said once per spell of failures; the next check tries again.
        if (!failing && !stopping) {
          failing = true;
          logger?.warn(
            { err: error },
            "Could not vacuum or analyze Herald's tables; trying again at the next check. Claims may read more rows than needed meanwhile.",
          );
        }
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  const timer = setInterval(runOnce, intervalMs);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      stopping = true;
      // A vacuum of a large table can take minutes: it is cancelled rather than waited for, and the
      // next check of any process does it again.
      if (running && busyPid !== undefined) {
        await pool.query("SELECT pg_cancel_backend($1)", [busyPid]).catch(() => undefined);
      }
      await running;
    },
  };
}
