import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  BlockedAddressError,
  checkLiteralHost,
  guardedLookup,
  privateRange,
} from "../../src/adapters/address-guard.js";

describe("private address guard", () => {
  test("refuses loopback, private, link-local, CGNAT, metadata and reserved addresses", () => {
    for (const address of [
      "127.0.0.1",
      "10.1.2.3",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "fe80::1",
      "fc00::1",
      "fd00:ec2::254",
      "::ffff:127.0.0.1",
      "::ffff:10.0.0.1",
    ]) {
      assert.notEqual(privateRange(address), undefined, address);
    }
  });

  test("lets public addresses through", () => {
    for (const address of [
      "93.184.216.34",
      "8.8.8.8",
      "2606:2800:220:1:248:1893:25c8:1946",
      "::ffff:8.8.8.8",
    ]) {
      assert.equal(privateRange(address), undefined, address);
    }
  });

  test("refuses IPv4-compatible IPv6 addresses, which wrap an IPv4 one, as URLs write them", () => {
    // WHATWG URLs write [::127.0.0.1] as [::7f00:1] and [::169.254.169.254] as [::a9fe:a9fe].
    assert.equal(new URL("http://[::127.0.0.1]/").hostname, "[::7f00:1]");
    for (const host of ["[::7f00:1]", "[::a9fe:a9fe]", "[::808:808]"]) {
      assert.throws(() => checkLiteralHost(host), /IPv4-compatible IPv6 \(::\/96/, host);
    }
  });

  test("names special-purpose ranges in words, not by library names", () => {
    const refusal = (host: string) => {
      try {
        checkLiteralHost(host);
      } catch (error) {
        return (error as Error).message;
      }
      return "";
    };
    assert.match(refusal("[64:ff9b::a00:1]"), /it is a NAT64 \(64:ff9b::\/96/);
    assert.match(refusal("[2001:db8::1]"), /it is a reserved \(kept for documentation/);
    assert.match(refusal("[100::1]"), /it is a special-purpose \(the discard range\) address/);
    assert.doesNotMatch(refusal("198.18.0.1"), /reserved \(reserved\)/);
  });

  test("checks literal IP hosts, including bracketed IPv6", () => {
    assert.throws(() => checkLiteralHost("127.0.0.1"), BlockedAddressError);
    assert.throws(() => checkLiteralHost("[::1]"), BlockedAddressError);
    assert.doesNotThrow(() => checkLiteralHost("8.8.8.8"));
    assert.doesNotThrow(() => checkLiteralHost("example.com"));
  });

  test("refuses a name that resolves to a private address, and says how to allow it", async () => {
    const error = await new Promise<Error | null>((resolve) =>
      guardedLookup("localhost", {}, (err) => resolve(err)),
    );
    assert.ok(error instanceof BlockedAddressError);
    assert.match(error.message, /HERALD_ALLOW_PRIVATE_TARGETS=true/);
  });
});
