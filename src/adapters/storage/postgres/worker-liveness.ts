/**
 * A delivering process shows it is alive by holding a session advisory lock on a connection of its
 * own, with a row in herald_workers naming it. PostgreSQL drops the lock the moment that session
 * ends, whether the process stopped, crashed or was killed, so a sweep in any process can free a
 * dead worker's leases seconds later instead of waiting for them to run out. The few seconds of
 * grace let a live worker whose connection was cut take its lock back before anyone resends its
 * deliveries.
 */
import type pg from "pg";
import { type HeldSession, holdSession, type SessionEvents } from "./held-session.js";

/** First key of Herald's worker locks among the database's advisory locks ("HRLD"). */
export const WORKER_LOCK_CLASS = 0x48524c44;

/** How long a registered worker may be without its lock before it counts as dead. */
export const WORKER_GRACE_MS = 3_000;

/** True when the worker of row `w` holds its lock, i.e. its session is up. */
export const HOLDS_LOCK = `EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = ${WORKER_LOCK_CLASS}::oid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.objid = hashtext(w.id)::oid)`;

/**
 * Notes since when (`$2`, now) each registered worker has been without its lock, and forgets that
 * for those holding it again (only rows whose state changed are written): a lost connection that
 * comes back within the grace costs nothing.
 * `$1` lists the sweeping process's own workers, alive whatever their lock (one may be reconnecting).
 */
export const NOTE_MISSING_WORKERS = `
  UPDATE herald_workers w
  SET missing_since = CASE WHEN w.missing_since IS NULL THEN $2::bigint END
  WHERE w.id <> ALL($1::text[]) AND ${HOLDS_LOCK} = (w.missing_since IS NOT NULL)`;

/** Deletes, and returns, the workers without their lock since `$2` (now less the grace) or before. */
export const DEAD_WORKERS = `
  DELETE FROM herald_workers w
  WHERE w.id <> ALL($1::text[]) AND w.missing_since <= $2 AND NOT ${HOLDS_LOCK}
  RETURNING w.id`;

/**
 * Takes the lock for `workerId`, then registers it (again after a lost connection); resolves once
 * it is registered. While the connection is down, other processes may free this worker's leases
 * and send those deliveries again, which at-least-once delivery allows. The row outlives the
 * process: the next sweep finds its lock gone, frees what it still held, and removes it.
 */
export function holdWorkerLiveness(
  config: pg.ClientConfig,
  workerId: string,
  now: () => number,
  events: SessionEvents,
): Promise<HeldSession> {
  return holdSession(
    config,
    async (client) => {
      // Held already: by this worker's previous session, after a lost connection, that the server
      // has not yet noticed is gone (the reconnect tries again each second until it has), or, very
      // rarely, by a worker whose name hashes alike (a restart draws a new name).
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked",
        [WORKER_LOCK_CLASS, workerId],
      );
      if (!rows[0]?.locked) {
        throw new Error(
          `Another PostgreSQL session holds the liveness lock of worker ${workerId}. Restart this process if the message repeats.`,
        );
      }
      await client.query(
        `INSERT INTO herald_workers (id, started_at) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET missing_since = NULL`,
        [workerId, now()],
      );
    },
    events,
  );
}
