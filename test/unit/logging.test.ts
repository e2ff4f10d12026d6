import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../src/adapters/logging.js";

/** The lines a logger at `level` writes for `log`, parsed. */
function written(level: string, log: (logger: ReturnType<typeof createLogger>) => void) {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  log(createLogger(level, destination));
  return chunks
    .join("")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, any>);
}

test("an error is logged with its message and code, and its stack only at debug", () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {
    code: "ECONNREFUSED",
  });
  const log = (logger: ReturnType<typeof createLogger>) =>
    logger.error({ err: refused }, "The database could not serve.");
  const [info] = written("info", log);
  assert.equal(info?.err.message, "connect ECONNREFUSED 127.0.0.1:5432");
  assert.equal(info?.err.code, "ECONNREFUSED");
  assert.equal(info?.err.stack, undefined);
  assert.equal(info?.level, "error");
  assert.match(String(info?.time), /^\d{4}-\d\d-\d\dT/);
  const [debug] = written("debug", log);
  assert.match(String(debug?.err.stack), /^Error: connect ECONNREFUSED/);
});
