/**
 * End-to-end: the lines Herald prints when its settings, its database or its data directory are
 * wrong, and when it is told twice to stop. Each must name what is at fault and say what to do,
 * without a stack trace or a password. The PostgreSQL cases use the real test server, and fail
 * rather than skip when it cannot be reached.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pg from "pg";
import { postgresStartupFailure } from "../../src/adapters/storage/postgres/connection-errors.js";
import { CONNECT_TIMEOUT_MS } from "../../src/adapters/storage/postgres/postgres-store.js";
import { TEST_API_KEY } from "../support/herald.js";
import { dedicatedRole, TEST_PG_URL, urlWithSchema } from "../support/postgres.js";
import { freePort, logLines, runHeraldToExit, spawnHerald } from "../support/process.js";

/** Runs Herald, with the test key unless `env` gives one, until it exits; returns what it printed. */
function startRefused(env: Record<string, string>, options: { uid?: number; gid?: number } = {}) {
  return runHeraldToExit({ HERALD_API_KEY: TEST_API_KEY, ...env }, options);
}

/** No stack trace, no raw driver text such as "Invalid URL", no password. */
function assertPlain(output: string, secret?: string): void {
  assert.doesNotMatch(output, /\n\s+at |Invalid URL|Error:/, output);
  if (secret !== undefined)
    assert.ok(!output.includes(secret), `the password is shown:\n${output}`);
}

test("a HERALD_ variable Herald does not read is a warning at start naming the setting meant; Herald still starts", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const herald = await spawnHerald({
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: TEST_API_KEY,
    HERALD_API_KEYS: "other-key-0123456789abcdef",
    HERALD_RETRY_SCHEDUL: "5s",
    HERALD_INCOMING_SECRET_XANO: "xano-secret",
    LOG_LEVEL: "warn",
  });
  t.after(() => herald.stop());
  // Only the settings set here: the shell that runs the tests may hold others.
  const warnings = logLines(herald.output())
    .filter((line) => /^HERALD_(API_KEYS|RETRY_SCHEDUL|INCOMING_SECRET_XANO) /.test(line.msg))
    .map(({ level, msg }) => ({ level, msg }));
  assert.deepEqual(warnings, [
    {
      level: "warn",
      msg: "HERALD_API_KEYS is not a Herald setting, so it is ignored. Did you mean HERALD_API_KEY?",
    },
    {
      level: "warn",
      msg: "HERALD_RETRY_SCHEDUL is not a Herald setting, so it is ignored. Did you mean HERALD_RETRY_SCHEDULE?",
    },
  ]);
});

test("a DATABASE_URL without a scheme, or with a port that is not one, is refused by the settings check", async () => {
  const { code, output } = await startRefused({
    DATABASE_URL: "localhost:5432",
    HERALD_DB_POOL_SIZE: "1",
  });
  assert.equal(code, 1);
  assert.match(output, /^Herald cannot start because of its settings:\n/);
  assert.match(
    output,
    /- DATABASE_URL=localhost:5432 has no scheme, .* Write it as postgres:\/\/user:password@localhost:5432\/dbname /,
  );
  assert.match(output, /- HERALD_DB_POOL_SIZE=1 is not valid/);
  const port = await startRefused({ DATABASE_URL: "postgres://herald:hunter2@db:99999/herald" });
  assert.match(
    port.output,
    /- DATABASE_URL has port 99999, which is not a port: use a whole number from 1 to 65535/,
  );
  assertPlain(port.output, "hunter2");
});

test("PostgreSQL that nothing answers for: the host and port are named, the password is not", async () => {
  const port = await freePort();
  const { code, output } = await startRefused({
    DATABASE_URL: `postgres://herald:s3cret-pw@127.0.0.1:${port}/herald`,
  });
  assert.equal(code, 1);
  assert.equal(
    output,
    `Nothing answers at 127.0.0.1:${port} (ECONNREFUSED): is PostgreSQL running there?\nStart PostgreSQL, or correct the host and port in DATABASE_URL, then start Herald again.\n`,
  );
  assertPlain(output, "s3cret-pw");
});

test("a PostgreSQL host no name server knows is named as such", async () => {
  const { code, output } = await startRefused({
    DATABASE_URL: "postgres://herald:s3cret-pw@nohost.invalid:5432/herald",
  });
  assert.equal(code, 1);
  // ENOTFOUND, or EAI_AGAIN where no name server answers at all.
  assert.match(output, /^The host nohost\.invalid is not known: .* \((ENOTFOUND|EAI_AGAIN)\)\.\n/);
  assert.match(output, /DATABASE_URL, then start Herald again\.\n$/);
  assertPlain(output, "s3cret-pw");
});

test("a search_path schema that does not exist is named, with the statement that creates it", async () => {
  const schema = `herald_missing_${Date.now().toString(36)}`;
  const { code, output } = await startRefused({ DATABASE_URL: urlWithSchema(schema) });
  assert.equal(code, 1);
  const database = new URL(TEST_PG_URL).pathname.slice(1);
  assert.match(
    output,
    new RegExp(
      `^The schema ${schema} named in search_path does not exist in database ${database} at \\S+ \\(3F000\\)\\.\\nCreate it \\(CREATE SCHEMA ${schema};\\) or correct search_path in DATABASE_URL, then start Herald again\\.\\n$`,
    ),
  );
});

test("a database that does not exist is named, with the statement that creates it", async () => {
  const url = new URL(TEST_PG_URL);
  const database = `herald_missing_${Date.now().toString(36)}`;
  url.pathname = `/${database}`;
  const { code, output } = await startRefused({ DATABASE_URL: url.toString() });
  assert.equal(code, 1);
  assert.match(
    output,
    new RegExp(
      `^PostgreSQL at ${url.hostname}:${url.port || 5432} has no database named ${database} \\(3D000\\)\\.\\nCreate it \\(CREATE DATABASE ${database};\\) or correct the database name in DATABASE_URL`,
    ),
  );
});

test("a worker that gets no connection for its sessions at start says so in words, naming the limit to raise", async (t) => {
  const { admin, role, url } = await dedicatedRole(t, "herald_limited");
  // Enough to open the store and run its migrations, not for the sessions a worker holds.
  await admin.query(`ALTER ROLE ${role} CONNECTION LIMIT 2`);
  const { code, output } = await startRefused({
    DATABASE_URL: url.toString(),
    HERALD_ROLE: "worker",
    LOG_LEVEL: "fatal",
  });
  assert.equal(code, 1);
  assert.match(
    output,
    /^PostgreSQL at \S+ has no connection left for Herald \(53300\): too many connections for role "herald_limited_\w+"\.\nRaise max_connections on the server \(or the connection limit of Herald's role\), or lower HERALD_DB_POOL_SIZE or the number of Herald processes, then start Herald again\.\n$/,
  );
});

test("an sslmode the server cannot meet is named", async () => {
  const url = new URL(TEST_PG_URL);
  url.searchParams.set("sslmode", "require");
  const { code, output } = await startRefused({ DATABASE_URL: url.toString() });
  assert.equal(code, 1);
  // A server without SSL refuses it; one with a certificate Herald cannot check fails that check.
  assert.match(
    output,
    /does not accept encrypted connections, which DATABASE_URL asks for with sslmode=require\.|could not trust the certificate of PostgreSQL at \S+, as sslmode=require asks/,
  );
});

test("PostgreSQL that accepts the connection and never answers: the wait is named in seconds", async (t) => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const { port } = silent.address() as { port: number };
  const url = `postgres://herald:s3cret-pw@127.0.0.1:${port}/herald`;
  // The errors node-postgres gives, from a pool (the store) and from a client (the listener).
  const pool = new pg.Pool({ connectionString: url, connectionTimeoutMillis: 200 });
  t.after(() => pool.end());
  const fromPool = await pool.query("SELECT 1").catch((error: unknown) => error);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 200 });
  const fromClient = await client.connect().catch((error: unknown) => error);
  for (const error of [fromPool, fromClient]) {
    assert.equal(
      postgresStartupFailure(url, error),
      `PostgreSQL at 127.0.0.1:${port} did not answer within ${CONNECT_TIMEOUT_MS / 1000} s (timeout).\nCheck that the host and port in DATABASE_URL are right and that no firewall drops the connection, then start Herald again.`,
    );
  }
});

test("a data directory that is a file, or lies under one, is named with what to do", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "not-a-directory");
  writeFileSync(file, "");
  const isFile = await startRefused({ HERALD_DATA_DIR: file });
  assert.equal(isFile.code, 1);
  assert.equal(
    isFile.output,
    `HERALD_DATA_DIR (${file}) is a file, not a folder (EEXIST): point it at a folder, or remove the file, then start Herald again.\n`,
  );
  const under = await startRefused({ HERALD_DATA_DIR: join(file, "data") });
  assert.equal(
    under.output,
    `HERALD_DATA_DIR (${join(file, "data")}) lies under ${file}, which is a file, not a folder (ENOTDIR): point it at a folder, or remove that file, then start Herald again.\n`,
  );
});

test("a data directory Herald may not write names the user it runs as", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "herald-startup-"));
  const dataDir = join(dir, "data");
  // root may write anywhere: the check is made as nobody instead.
  const asRoot = process.getuid?.() === 0;
  if (!asRoot) chmodSync(dir, 0o555);
  t.after(() => {
    chmodSync(dir, 0o755);
    rmSync(dir, { recursive: true, force: true });
  });
  const { code, output } = await startRefused(
    { HERALD_DATA_DIR: dataDir },
    asRoot ? { uid: 65534, gid: 65534 } : {},
  );
  assert.equal(code, 1, output);
  const user = asRoot ? "(nobody|with uid 65534)" : userInfo().username;
  assert.match(
    output,
    new RegExp(
      `^Herald runs as the user ${user}, who may not create or write ${dataDir} \\(EACCES\\): give that user write access to ${dataDir} \\(for example: mkdir -p ${dataDir} && chown \\S+ ${dataDir}\\), or point HERALD_DATA_DIR at a folder it may write to, then start Herald again\\.\\n$`,
    ),
  );
});

for (const [signal, exitCode] of [
  ["SIGTERM", 143],
  ["SIGINT", 130],
] as const) {
  test(`a second ${signal} while stopping says that Herald stops at once, then exits with ${exitCode}`, {
    timeout: 60_000,
  }, async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), "herald-startup-"));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const herald = await spawnHerald({
      HERALD_DATA_DIR: dataDir,
      HERALD_API_KEY: TEST_API_KEY,
      HERALD_SHUTDOWN_GRACE: "60s",
    });
    t.after(() => herald.kill());
    // A client that sends half its body holds the stop until the grace runs out.
    const stalled = connect(herald.port, "127.0.0.1");
    stalled.on("error", () => {});
    t.after(() => stalled.destroy());
    await new Promise((resolve) => stalled.once("connect", resolve));
    stalled.write(
      `POST /api/webhooks/trigger HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nAuthorization: Bearer ${TEST_API_KEY}\r\n\r\n{"event":`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    herald.process.kill(signal);
    const deadline = Date.now() + 10_000;
    while (!herald.output().includes("Herald is stopping")) {
      assert.ok(Date.now() < deadline, `Herald did not start stopping:\n${herald.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    herald.process.kill(signal);
    const exit = await herald.exited;
    assert.deepEqual(exit, { code: exitCode, signal: null }, herald.output());
    const last = herald.output().trim().split("\n").at(-1) ?? "";
    const line = JSON.parse(last) as { level: string; signal: string; msg: string };
    assert.equal(line.level, "warn");
    assert.equal(line.signal, signal);
    assert.equal(
      line.msg,
      `A second stop signal (${signal}) came: Herald stops now without waiting; attempts still in flight stay pending and are sent again after the next start (a receiver may get them twice).`,
    );
  });
}
