import assert from "node:assert/strict";
import { test } from "node:test";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { createErrorHandler, createOutageLog } from "../../src/adapters/http/error-mapper.js";
import {
  outageAdvice,
  storageOutage,
  storeFailureAdvice,
} from "../../src/adapters/storage/outage.js";
import { capturedLogger } from "../support/log-capture.js";

const isStorageOutage = (error: unknown) => storageOutage(error) !== undefined;

test("a database that is down, restarting, full or out of connections is an outage", () => {
  for (const code of [
    "ECONNREFUSED",
    "ECONNRESET",
    "57P01",
    "57P03",
    "53300",
    "08006",
    "28P01",
    "3D000",
    "25006",
    "40P01",
    "SQLITE_BUSY",
    "SQLITE_FULL",
    "SQLITE_IOERR_WRITE",
  ]) {
    assert.equal(isStorageOutage(Object.assign(new Error("x"), { code })), true, code);
  }
  assert.equal(isStorageOutage(new Error("Connection terminated unexpectedly")), true);
  const notAccepting = new Error('database "herald" is not currently accepting connections');
  assert.equal(isStorageOutage(Object.assign(notAccepting, { code: "55000" })), true);
  // The same SQLSTATE for another reason (a statement in the wrong state) is a bug.
  const otherState = new Error("cannot refresh materialized view concurrently");
  assert.equal(isStorageOutage(Object.assign(otherState, { code: "55000" })), false);
});

test("a full disk is told apart from a database that cannot be reached", () => {
  for (const code of ["SQLITE_FULL", "53100"]) {
    assert.equal(storageOutage(Object.assign(new Error("x"), { code })), "full", code);
  }
  for (const code of ["ECONNREFUSED", "SQLITE_BUSY", "53300"]) {
    assert.equal(storageOutage(Object.assign(new Error("x"), { code })), "unavailable", code);
  }
  // A statement sent and never answered may have taken effect: not "nothing stored".
  assert.equal(storageOutage(new Error("Query read timeout")), "no_answer");
  assert.equal(storageOutage(new Error("timeout exceeded when trying to connect")), "unavailable");
});

test("constraint violations, bugs and non-errors are not outages", () => {
  for (const code of ["SQLITE_CONSTRAINT_UNIQUE", "23505", "42P01", "ERR_INVALID_ARG_TYPE"]) {
    assert.equal(isStorageOutage(Object.assign(new Error("x"), { code })), false, code);
  }
  assert.equal(isStorageOutage(new TypeError("cannot read properties of undefined")), false);
  assert.equal(isStorageOutage(undefined), false);
  assert.equal(isStorageOutage("ECONNREFUSED"), false);
});

test("an outage is told with what its code means and what to do; codes that say no more, plainly", () => {
  const tooMany = Object.assign(new Error("sorry, too many clients already"), { code: "53300" });
  assert.match(
    outageAdvice(tooMany),
    /^PostgreSQL has no connection left for Herald \(53300\): raise max_connections .* The database said: sorry, too many clients already\.$/,
  );
  const standby = Object.assign(new Error("cannot execute INSERT in a read-only transaction"), {
    code: "25006",
  });
  assert.match(outageAdvice(standby), /read-only standby.*points at a standby/);
  // An extended SQLite code is told as its primary one.
  const busy = Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY_SNAPSHOT" });
  assert.match(outageAdvice(busy), /^The SQLite file is locked by another program/);
  assert.equal(
    outageAdvice(new Error("Connection terminated unexpectedly")),
    "The database could not serve: check that it is running and reachable.",
  );
});

test("a worker's database failure is told by what it is: a full disk, a lost answer, a code's meaning, else the error", () => {
  assert.match(storeFailureAdvice({ code: "SQLITE_FULL" }), /disk is full: free space/);
  assert.match(storeFailureAdvice(new Error("Query read timeout")), /did not answer a write/);
  assert.match(
    storeFailureAdvice(
      Object.assign(new Error("password authentication failed"), { code: "28P01" }),
    ),
    /refused Herald's login \(28P01, wrong password\).*The database said: password authentication failed\./,
  );
  assert.match(
    storeFailureAdvice(new Error("no such column: x")),
    /^Check that the database is running and reachable; the error in this line says what it refused\.$/,
  );
});

test("a database that comes and goes is told at most twice a 10 s, not at every failure", () => {
  const { logger, lines } = capturedLogger("info");
  const request = {
    log: logger,
    method: "POST",
    url: "/api/webhooks/trigger",
    raw: { aborted: false, socket: { destroyed: false } },
  } as unknown as FastifyRequest;
  const answers: number[] = [];
  const reply = {
    header: () => reply,
    status(code: number) {
      answers.push(code);
      return reply;
    },
    send: () => reply,
  } as unknown as FastifyReply;
  const tooMany = Object.assign(new Error("sorry, too many clients already"), { code: "53300" });
  const outages = createOutageLog();
  const handleError = createErrorHandler(outages);
  for (let i = 0; i < 25; i++) {
    handleError(tooMany as unknown as FastifyError, request, reply);
    outages.stored(request);
  }
  assert.deepEqual(new Set(answers), new Set([503]));
  const failing = lines.filter((line) => line.level === "error");
  const back = lines.filter((line) => line.msg.startsWith("The database serves again"));
  // The first failure, once more after the first recovery, then nothing within the 10 s.
  assert.equal(failing.length, 2, JSON.stringify(lines));
  assert.equal(back.length, 2, JSON.stringify(lines));
  assert.match(String(failing[0]?.msg), /no connection left for Herald \(53300\)/);
});
