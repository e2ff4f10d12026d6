import assert from "node:assert/strict";
import { test } from "node:test";
import { parseBody } from "../../src/adapters/body-parser.js";

test("form fields named like Object's own properties are read like any other field", () => {
  const body = Buffer.from("constructor=hello&toString=1&__proto__=x&a=1&a=2");
  const parsed = parseBody(body, "form");
  // JSON shows own properties only, in order: nothing inherited, nothing lost.
  assert.equal(
    JSON.stringify(parsed),
    '{"constructor":"hello","toString":"1","__proto__":"x","a":["1","2"]}',
  );
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
});
