/**
 * Refuses outbound connections to addresses inside private networks (loopback, RFC 1918, link-local,
 * CGNAT, cloud metadata, unique-local, multicast, reserved), for IPv4, IPv6 and IPv4-mapped IPv6.
 * It checks the address a name resolves to, at connect time, so DNS rebinding cannot get around it.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

/** ipaddr.js range names in words, with their article. */
const RANGE_WORDS: Record<string, string> = {
  unspecified: "an unspecified (0.0.0.0 or ::)",
  loopback: "a loopback",
  private: "a private-network (RFC 1918)",
  linkLocal: "a link-local (including cloud metadata)",
  carrierGradeNat: "a carrier-grade NAT (100.64.0.0/10)",
  uniqueLocal: "a unique-local IPv6",
  multicast: "a multicast",
  broadcast: "a broadcast",
  reserved: "a reserved (kept for documentation, testing or future use)",
  benchmarking: "a benchmarking (198.18.0.0/15 or 2001:2::/48)",
  ipv4Compatible: "an IPv4-compatible IPv6 (::/96, which wraps an IPv4 address)",
  rfc6145: "an IPv4-translated IPv6 (::ffff:0:0:0/96, which wraps an IPv4 address)",
  rfc6052: "a NAT64 (64:ff9b::/96, which reaches an IPv4 address through a gateway)",
  "6to4": "a 6to4 (2002::/16, which wraps an IPv4 address)",
  teredo: "a Teredo tunnel (2001::/32)",
  unparseable: "an unreadable",
};

/** The error an attempt records when its target is refused. */
export class BlockedAddressError extends Error {
  readonly code = "HERALD_BLOCKED_ADDRESS";
  constructor(host: string, address: string, range: string) {
    const words = RANGE_WORDS[range] ?? `a special-purpose (the ${range} range)`;
    super(
      `refused to connect to ${host} (${address}): it is ${words} address, and deliveries to private networks are off. Use a public URL, or set HERALD_ALLOW_PRIVATE_TARGETS=true to allow it.`,
    );
    this.name = "BlockedAddressError";
  }
}

/** The range name of `address` when it is not a public unicast address; undefined when public. */
export function privateRange(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return "unparseable";
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  const range = parsed.range();
  // ::a.b.c.d, deprecated, may still reach the IPv4 address it wraps; ipaddr.js calls it unicast.
  if (range === "unicast" && parsed.kind() === "ipv6") {
    const parts = (parsed as ipaddr.IPv6).parts;
    if (parts.slice(0, 6).every((part) => part === 0)) return "ipv4Compatible";
  }
  return range === "unicast" ? undefined : range;
}

/** Throws BlockedAddressError when `host` is a literal IP inside a private range. */
export function checkLiteralHost(host: string): void {
  const bare = host.startsWith("[") ? host.slice(1, -1) : host;
  if (isIP(bare) === 0) return;
  const range = privateRange(bare);
  if (range) throw new BlockedAddressError(host, bare, range);
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A drop-in for `dns.lookup` that fails when any resolved address is private. */
export function guardedLookup(
  hostname: string,
  options: LookupOptions,
  callback: LookupCallback,
): void {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    for (const { address } of addresses) {
      const range = privateRange(address);
      if (range) return callback(new BlockedAddressError(hostname, address, range), []);
    }
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) return callback(new Error(`no address found for ${hostname}`), []);
    callback(null, first.address, first.family);
  });
}
