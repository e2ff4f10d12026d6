/** End-to-end: what Herald does at start, as a child process, with the data directory it is given. */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { SQLITE_MIGRATIONS } from "../../src/adapters/storage/sqlite/migrations.js";
import { createTestSchema, TEST_PG_URL, urlWithSchema } from "../support/postgres.js";
import { logLines, spawnHerald } from "../support/process.js";

test("a generated API key is printed even when LOG_LEVEL hides warnings, and its file is made private", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  // An empty key file left behind with a loose mode.
  writeFileSync(join(dataDir, "api-key"), "", { mode: 0o644 });
  // Opened before the start, as another user could while its mode let them.
  const opened = openSync(join(dataDir, "api-key"), "r");
  t.after(() => closeSync(opened));
  const herald = await spawnHerald({ HERALD_DATA_DIR: dataDir, LOG_LEVEL: "error" });
  t.after(() => herald.stop());
  const key = /Bearer (hk_[\w-]+)/.exec(herald.output())?.[1];
  assert.ok(key, `no key printed:\n${herald.output()}`);
  // Printed so that the header can be copied as it stands, without escaped quotes around it.
  assert.match(herald.output(), new RegExp(`header Authorization: Bearer ${key} \\(`));
  assert.equal(statSync(join(dataDir, "api-key")).mode & 0o777, 0o600);
  assert.equal(readFileSync(opened, "utf8"), "", "the key was written into the file opened before");
  const list = await fetch(`${herald.url}/api/webhooks`, {
    headers: { authorization: `Bearer ${key}` },
  });
  assert.equal(list.status, 200);
});

test("a data directory that is a file stops Herald at start with a message naming HERALD_DATA_DIR", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "not-a-directory");
  writeFileSync(file, "");
  await assert.rejects(
    spawnHerald({ HERALD_DATA_DIR: file, HERALD_API_KEY: "startup-test-key-0123456789" }),
    (error: Error) => {
      assert.match(error.message, /HERALD_DATA_DIR/);
      assert.doesNotMatch(error.message, /DATABASE_URL/);
      return true;
    },
  );
});

test("a saved API key no header can carry stops Herald at start, saying what to do", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  writeFileSync(join(dataDir, "api-key"), "ключ-0123456789abcdef\n", { mode: 0o600 });
  await assert.rejects(spawnHerald({ HERALD_DATA_DIR: dataDir }), (error: Error) => {
    assert.match(error.message, /api-key holds characters an HTTP header cannot carry/);
    assert.match(error.message, /Delete the file/);
    return true;
  });
});

test("a saved API key others can read, and a Stripe secret not from Stripe, are warnings that say what to do", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const keyFile = join(dataDir, "api-key");
  writeFileSync(keyFile, "hk_saved-key-0123456789abcdef\n", { mode: 0o644 });
  // Modes given at creation are cut by the umask; this one must stay readable by others.
  chmodSync(keyFile, 0o644);
  const herald = await spawnHerald({
    HERALD_DATA_DIR: dataDir,
    HERALD_INCOMING_SECRET_STRIPE: "sk_test_not-a-signing-secret",
    LOG_LEVEL: "warn",
  });
  t.after(() => herald.stop());
  const warnings = logLines(herald.output());
  const said = (pattern: RegExp) => warnings.find((line) => pattern.test(line.msg));
  assert.equal(said(/can be read by other users/)?.msg.endsWith(`chmod 600 ${keyFile}`), true);
  // Readable as it stands: the level as a word, the time as a date.
  assert.equal(said(/can be read by other users/)?.level, "warn");
  assert.match(
    said(/can be read by other users/)?.time ?? "",
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
  );
  assert.match(said(/does not start with whsec_/)?.msg ?? "", /copied whole/);
  // The saved key is the one in use.
  const list = await fetch(`${herald.url}/api/webhooks`, {
    headers: { authorization: "Bearer hk_saved-key-0123456789abcdef" },
  });
  assert.equal(list.status, 200);
});

test("a port already in use stops Herald at start with one plain sentence naming PORT", async (t) => {
  const taken = createServer((_req, res) => res.writeHead(503).end());
  await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
  t.after(() => taken.close());
  const { port } = taken.address() as AddressInfo;
  const dataDir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  await assert.rejects(
    spawnHerald({
      HERALD_DATA_DIR: dataDir,
      HERALD_API_KEY: "startup-test-key-0123456789",
      PORT: String(port),
    }),
    (error: Error) => {
      assert.match(error.message, new RegExp(`Port ${port} is already in use.*set PORT`));
      assert.doesNotMatch(error.message, /stopped cleanly|"level":"fatal"|\n\s+at /);
      return true;
    },
  );
});

test("npm run migrate without DATABASE_URL says it made a new SQLite file, then that it is up to date, what it applied, or that the file is newer", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-migrate-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HERALD_DATA_DIR: dataDir };
  const migrate = () =>
    execFileSync(process.execPath, ["--import", "tsx", "src/migrate.ts"], {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      env,
      encoding: "utf8",
    });
  const path = join(dataDir, "herald.db");
  assert.equal(
    migrate(),
    `There was no SQLite database at ${path}, so a new one was created, up to date. DATABASE_URL is not set: set it to migrate another database, such as postgres://user:password@host:5432/db.\n`,
  );
  const release = SQLITE_MIGRATIONS.length;
  assert.equal(
    migrate(),
    `The SQLite database ${path} is already up to date (schema version ${release}).\n`,
  );
  const setVersion = (version: number) => {
    const db = new Database(path);
    db.pragma(`user_version = ${version}`);
    db.close();
  };
  setVersion(release - 1);
  assert.equal(
    migrate(),
    `Applied 1 migration to the SQLite database ${path} (schema version ${release} now).\n`,
  );
  setVersion(release + 1);
  assert.match(
    migrate(),
    new RegExp(
      `^The database's schema is at version ${release + 1}, newer than this release of Herald knows \\(${release}\\)`,
    ),
  );
});

test("npm run migrate on PostgreSQL says what it applied, and a failure in words with what to do", async (t) => {
  const { schema, drop } = await createTestSchema();
  t.after(drop);
  const migrate = (url: string) =>
    spawnSync(process.execPath, ["--import", "tsx", "src/migrate.ts"], {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      env: { PATH: process.env.PATH, DATABASE_URL: url },
      encoding: "utf8",
    });
  const first = migrate(urlWithSchema(schema));
  assert.equal(first.status, 0, first.stderr);
  assert.match(
    first.stdout,
    /^Applied \d+ migrations to the PostgreSQL database \(schema version \d+ now\)\.\n$/,
  );
  const again = migrate(urlWithSchema(schema));
  assert.match(
    again.stdout,
    /^The PostgreSQL database is already up to date \(schema version \d+\)\.\n$/,
  );

  const missing = migrate(urlWithSchema(`${schema}_missing`));
  assert.equal(missing.status, 1);
  assert.match(
    missing.stderr,
    new RegExp(
      `^The schema ${schema}_missing named in search_path does not exist .*\\nCreate it .* then run the migration again\\.\\n$`,
    ),
  );
  const closed = new URL(TEST_PG_URL);
  closed.port = "9";
  const refused = migrate(closed.toString());
  assert.equal(refused.status, 1);
  assert.match(
    refused.stderr,
    /^Nothing answers at \S+:9 \(ECONNREFUSED\).*\n.*then run the migration again\.\n$/,
  );
  assert.doesNotMatch(refused.stderr, /Migration failed|\n\s+at /);
});
