/**
 * PostgreSQL schema, one entry per version, recorded in `herald_schema_migrations`. They run at start
 * (or with `npm run migrate`) under an advisory lock, so processes starting together do not race.
 * Times are Unix milliseconds (bigint). Entries are never edited once released: add a new one.
 */
import type { Pool } from "pg";
import { type MigrationResult, migrationResult } from "../schema-version.js";
import { answeredWithin } from "./answered-within.js";

export const POSTGRES_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE webhooks (
    id text PRIMARY KEY,
    name text NOT NULL,
    url text NOT NULL,
    events text NOT NULL,              -- JSON array of event types
    secret text NOT NULL,              -- signing key, returned only at creation
    active boolean NOT NULL,           -- false pauses deliveries
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );

  CREATE TABLE events (
    id text PRIMARY KEY,
    type text NOT NULL,
    body text NOT NULL,                -- the exact JSON every attempt sends and signs
    created_at bigint NOT NULL
  );

  CREATE TABLE deliveries (
    seq bigserial PRIMARY KEY,         -- insertion order: newest-first pages and cursors
    id text NOT NULL UNIQUE,
    webhook_id text NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id text NOT NULL REFERENCES events(id),
    event_type text NOT NULL,
    status text NOT NULL,              -- pending | success | failed
    attempts integer NOT NULL,
    next_attempt_at bigint,            -- when a pending delivery is due
    locked_by text,                    -- the worker holding the lease
    locked_until bigint,               -- when the lease runs out and the row is claimable again
    last_status_code integer,
    last_response_body text,
    last_error text,
    last_attempt_at bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );
  CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
  CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
  CREATE INDEX deliveries_by_event ON deliveries (event_id);

  CREATE TABLE delivery_attempts (
    delivery_id text NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt integer NOT NULL,          -- 1 for the first attempt
    started_at bigint NOT NULL,
    duration_ms integer NOT NULL,
    status_code integer,               -- null when no response came
    error text,                        -- why the attempt failed, in plain words
    response_headers text,             -- JSON object of the headers kept
    response_body text,                -- first 4 KB
    PRIMARY KEY (delivery_id, attempt)
  );

  CREATE TABLE incoming_events (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    service text NOT NULL,
    event_name text,
    dedupe_key text,                   -- the sender's id for the webhook; one row per (service, key)
    headers text NOT NULL,             -- JSON object, credentials removed
    raw_body bytea NOT NULL,           -- exact bytes received, for re-verification and replay
    verified_by text NOT NULL,         -- the signature scheme that accepted it
    status text NOT NULL,              -- received, until routing is configured
    received_at bigint NOT NULL
  );
  CREATE UNIQUE INDEX incoming_dedupe ON incoming_events (service, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
  `,
  `
  CREATE TABLE sources (
    name text PRIMARY KEY,
    verifier text NOT NULL,            -- JSON verifier spec, without the secret
    secret text,                       -- write-only; null for built-in sources and 'none'
    rules text NOT NULL,               -- JSON array of routing rules
    settings text NOT NULL,            -- JSON: tolerance, body limit, rate limit
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );

  ALTER TABLE incoming_events ADD COLUMN content_type text;
  ALTER TABLE incoming_events ADD COLUMN verified boolean NOT NULL DEFAULT true;  -- false for 'none' sources
  ALTER TABLE incoming_events ADD COLUMN outgoing_event_id text;  -- the event it was routed to
  ALTER TABLE incoming_events ADD COLUMN route_error text;        -- why routing failed
  CREATE INDEX incoming_by_service ON incoming_events (service, seq);
  `,
  `
  -- Claims read only rows nobody holds, and expired leases through their own index, so a queue
  -- with many leased rows (a worker holding what it is about to send) costs a claim nothing.
  DROP INDEX deliveries_due;
  CREATE INDEX deliveries_claimable ON deliveries (next_attempt_at)
    WHERE status = 'pending' AND locked_by IS NULL;
  CREATE INDEX deliveries_leased ON deliveries (locked_until)
    WHERE status = 'pending' AND locked_by IS NOT NULL;
  `,
  `
  -- Foreign keys cost a trigger and a row lock per delivery and per attempt. The store keeps these
  -- links itself: deliveries are inserted only for webhooks locked by the same statement, and
  -- deleting a webhook deletes its deliveries and their attempts in the same transaction.
  ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_webhook_id_fkey;
  ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey;
  ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_delivery_id_fkey;
  -- No query looks deliveries up by event, and every insert and update paid for this index.
  DROP INDEX IF EXISTS deliveries_by_event;
  `,
  `
  -- The latest attempt is kept whole in its delivery's row; delivery_attempts holds the earlier ones.
  ALTER TABLE deliveries ADD COLUMN last_duration_ms integer;
  ALTER TABLE deliveries ADD COLUMN last_response_headers text;
  `,
  `
  -- Delivering processes: each has a row here and holds a session advisory lock for as long as it
  -- runs. A worker with a row and no lock has died, and its leases are freed at once.
  CREATE TABLE herald_workers (
    id text PRIMARY KEY,
    started_at bigint NOT NULL
  );
  `,
  `
  -- A worker whose lease ran out may still report the attempt it had started: it is kept beside
  -- the same-numbered attempt of the worker that took over, told apart by its start time.
  ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_pkey;
  ALTER TABLE delivery_attempts ADD PRIMARY KEY (delivery_id, attempt, started_at);
  `,
  `
  -- Since when a registered worker has been without its lock; it counts as dead only after a grace.
  ALTER TABLE herald_workers ADD COLUMN missing_since bigint;
  `,
  `
  -- Every outgoing event an incoming webhook was routed to (a replay adds one) names it, so all of
  -- them can be listed; incoming_events.outgoing_event_id keeps the latest.
  ALTER TABLE events ADD COLUMN incoming_event_id text;
  UPDATE events e SET incoming_event_id = i.id
    FROM incoming_events i WHERE i.outgoing_event_id = e.id;
  CREATE INDEX events_by_incoming ON events (incoming_event_id, created_at)
    WHERE incoming_event_id IS NOT NULL;
  `,
  `
  -- Webhooks are listed, and paged, in creation order.
  CREATE INDEX webhooks_by_creation ON webhooks (created_at, id);
  `,
  `
  -- Each webhook's claimable deliveries by due time: a claim that skips webhooks at their share (a
  -- slow receiver's backlog) finds the others' due rows without passing over the skipped ones. It
  -- holds the row's seq too, so the claim reads it here: fetching each row from the table would
  -- look dearer to the planner than walking the due-time index, skipped rows and all.
  CREATE INDEX deliveries_claimable_by_webhook ON deliveries (webhook_id, next_attempt_at)
    INCLUDE (seq) WHERE status = 'pending' AND locked_by IS NULL;
  `,
  `
  -- A webhook's failed deliveries, newest first, without reading its successes. A delivery enters
  -- it only when it fails for good, so sending costs nothing more.
  CREATE INDEX deliveries_failed_by_webhook ON deliveries (webhook_id, seq) WHERE status = 'failed';
  `,
  `
  -- Schemas created by some earlier releases differ from new ones: two indexes of incoming
  -- webhooks that no query reads were left over, and the index of claimable deliveries by webhook
  -- may lack the row's seq. Both now match a new schema.
  DROP INDEX IF EXISTS incoming_by_time;
  DROP INDEX IF EXISTS incoming_by_status;
  DO $$
  BEGIN
    IF EXISTS (
      SELECT 1 FROM pg_indexes
      WHERE schemaname = current_schema() AND indexname = 'deliveries_claimable_by_webhook'
        AND indexdef NOT LIKE '%INCLUDE (seq)%'
    ) THEN
      DROP INDEX deliveries_claimable_by_webhook;
      CREATE INDEX deliveries_claimable_by_webhook ON deliveries (webhook_id, next_attempt_at)
        INCLUDE (seq) WHERE status = 'pending' AND locked_by IS NULL;
    END IF;
  END $$;
  `,
];

/**
 * Migrations wait for each other's lock and may rewrite large tables: they get a day to answer,
 * not the pool's per-statement timeout.
 */
const MIGRATION_TIMEOUT_MS = 24 * 60 * 60_000;

/** An arbitrary constant naming Herald's migration lock among the database's advisory locks. */
const MIGRATION_LOCK_KEY = 4_242_017_001;

/** Applies pending migrations under an advisory lock. */
export async function migratePostgres(pool: Pool): Promise<MigrationResult> {
  const client = await pool.connect();
  try {
    await client.query(
      answeredWithin(MIGRATION_TIMEOUT_MS, "SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]),
    );
    await client.query(
      `CREATE TABLE IF NOT EXISTS herald_schema_migrations (
         version integer PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ version: number }>(
      "SELECT COALESCE(MAX(version), 0)::int AS version FROM herald_schema_migrations",
    );
    const current = rows[0]?.version ?? 0;
    for (let version = current; version < POSTGRES_MIGRATIONS.length; version++) {
      await client.query("BEGIN");
      try {
        await client.query(
          answeredWithin(MIGRATION_TIMEOUT_MS, POSTGRES_MIGRATIONS[version] as string),
        );
        await client.query("INSERT INTO herald_schema_migrations (version) VALUES ($1)", [
          version + 1,
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw error;
      }
    }
    return migrationResult(current, POSTGRES_MIGRATIONS.length);
  } finally {
    await client
      .query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY])
      .catch(() => undefined);
    client.release();
  }
}
