import assert from "node:assert/strict";
import { test } from "node:test";
import { storageOutage } from "../../src/adapters/storage/outage.js";

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
