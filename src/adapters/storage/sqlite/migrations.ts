/**
 * SQLite schema, one entry per version; `PRAGMA user_version` records how many have run.
 * Times are Unix milliseconds. Entries are never edited once released: add a new one instead.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    events TEXT NOT NULL,            -- JSON array of event types
    secret TEXT NOT NULL,            -- signing key, returned only at creation
    active INTEGER NOT NULL,         -- 0 pauses deliveries
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    body TEXT NOT NULL,              -- the exact JSON every attempt sends and signs
    created_at INTEGER NOT NULL
  );

  CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY,         -- insertion order: newest-first pages and cursors
    id TEXT NOT NULL UNIQUE,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id TEXT NOT NULL REFERENCES events(id),
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending | success | failed
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,         -- when a pending delivery is due
    last_status_code INTEGER,
    last_response_body TEXT,
    last_error TEXT,
    last_attempt_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
  CREATE INDEX deliveries_by_webhook ON deliveries(webhook_id, seq);

  CREATE TABLE delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,        -- 1 for the first attempt
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,             -- null when no response came
    error TEXT,                      -- why the attempt failed, in plain words
    response_headers TEXT,           -- JSON object of the headers kept
    response_body TEXT,              -- first 4 KB
    PRIMARY KEY (delivery_id, attempt)
  ) WITHOUT ROWID;

  CREATE TABLE incoming_events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL,
    event_name TEXT,
    dedupe_key TEXT,                 -- the sender's id for the webhook; one row per (service, key)
    headers TEXT NOT NULL,           -- JSON object, credentials removed
    raw_body BLOB NOT NULL,          -- exact bytes received, for re-verification and replay
    verified_by TEXT NOT NULL,       -- the signature scheme that accepted it
    status TEXT NOT NULL,            -- received, until routing is configured
    received_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX incoming_dedupe ON incoming_events(service, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
  `,
  `
  CREATE TABLE sources (
    name TEXT PRIMARY KEY,
    verifier TEXT NOT NULL,          -- JSON verifier spec, without the secret
    secret TEXT,                     -- write-only; null for built-in sources and 'none'
    rules TEXT NOT NULL,             -- JSON array of routing rules
    settings TEXT NOT NULL,          -- JSON: tolerance, body limit, rate limit
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  ALTER TABLE incoming_events ADD COLUMN content_type TEXT;
  ALTER TABLE incoming_events ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;  -- 0 for 'none' sources
  ALTER TABLE incoming_events ADD COLUMN outgoing_event_id TEXT;   -- the event it was routed to
  ALTER TABLE incoming_events ADD COLUMN route_error TEXT;         -- why routing failed
  CREATE INDEX incoming_by_service ON incoming_events(service, seq);
  `,
  `
  -- The latest attempt is kept whole in its delivery's row; delivery_attempts holds the earlier ones.
  ALTER TABLE deliveries ADD COLUMN last_duration_ms INTEGER;
  ALTER TABLE deliveries ADD COLUMN last_response_headers TEXT;
  `,
  `
  -- A worker whose lease ran out may still report the attempt it had started: it is kept beside
  -- the same-numbered attempt of the worker that took over, told apart by its start time.
  CREATE TABLE delivery_attempts_by_start (
    delivery_id TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    response_headers TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, attempt, started_at)
  ) WITHOUT ROWID;
  INSERT INTO delivery_attempts_by_start (delivery_id, attempt, started_at, duration_ms, status_code,
    error, response_headers, response_body)
    SELECT delivery_id, attempt, started_at, duration_ms, status_code, error, response_headers,
      response_body FROM delivery_attempts;
  DROP TABLE delivery_attempts;
  ALTER TABLE delivery_attempts_by_start RENAME TO delivery_attempts;
  `,
  `
  -- Every outgoing event an incoming webhook was routed to (a replay adds one) names it, so all of
  -- them can be listed; incoming_events.outgoing_event_id keeps the latest.
  ALTER TABLE events ADD COLUMN incoming_event_id TEXT;
  UPDATE events SET incoming_event_id =
    (SELECT i.id FROM incoming_events i WHERE i.outgoing_event_id = events.id)
  WHERE id IN (SELECT outgoing_event_id FROM incoming_events WHERE outgoing_event_id IS NOT NULL);
  CREATE INDEX events_by_incoming ON events(incoming_event_id, created_at)
    WHERE incoming_event_id IS NOT NULL;
  `,
  `
  -- Each webhook's pending deliveries by due time: a claim that skips webhooks at their share (a
  -- slow receiver's backlog) finds the others' due rows without passing over the skipped ones.
  CREATE INDEX deliveries_pending_by_webhook ON deliveries(webhook_id, next_attempt_at)
    WHERE status = 'pending';
  `,
  `
  -- Webhooks are listed, and paged, in creation order.
  CREATE INDEX webhooks_by_creation ON webhooks (created_at, id);
  `,
  `
  -- A webhook's failed deliveries, newest first, without reading its successes. A delivery enters
  -- it only when it fails for good, so sending costs nothing more.
  CREATE INDEX deliveries_failed_by_webhook ON deliveries(webhook_id, seq) WHERE status = 'failed';
  `,
  `
  -- Databases created by some earlier releases differ from new ones: the due-time index of
  -- pending deliveries may be missing (every claim would then read all of them), and two indexes
  -- of incoming webhooks that no query reads were left over. Both now match a new database.
  CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
  DROP INDEX IF EXISTS incoming_by_time;
  DROP INDEX IF EXISTS incoming_by_status;
  `,
];
