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

/** The HeraldError code and status class parseBody throws for `body`, or "parsed". */
function refusal(body: string, kind: "form" | "xml"): string {
  try {
    parseBody(Buffer.from(body), kind);
    return "parsed";
  } catch (error) {
    return (error as { code?: string }).code ?? "thrown without a code";
  }
}

test("a form body is read exactly: escapes decode to UTF-8, and a broken escape or non-UTF-8 bytes are refused", () => {
  assert.deepEqual(parseBody(Buffer.from("a=caf%C3%A9&b=x+y&c=100%25"), "form"), {
    a: "café",
    b: "x y",
    c: "100%",
  });
  for (const body of ["a=%FF%FE", "b=%E0%A4%A", "c=50%", "d=%zz", "e=%E0%A4&f=%A4"]) {
    assert.equal(refusal(body, "form"), "bad_request", body);
  }
});

test("an XML character reference to no character XML allows is refused, not kept as text", () => {
  assert.deepEqual(parseBody(Buffer.from("<r><a>&#233;&#x1F600;&amp;</a></r>"), "xml"), {
    r: { a: "é😀&" },
  });
  for (const body of [
    "<r>&#0;</r>",
    "<r><x>&#xD800;</x></r>",
    "<r><y>&#99999999999;</y></r>",
    '<r a="&#x1;"/>',
    "<r>&#xFFFE;</r>",
  ]) {
    assert.equal(refusal(body, "xml"), "bad_request", body);
  }
});
