import { randomBytes } from "node:crypto";

/** Prefixes of every id Herald hands out; the prefix tells a reader what the id names. */
export type IdPrefix = "wh" | "del" | "evt" | "in";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;

function randomSuffix(length: number): string {
  if (poolOffset + length > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  let out = "";
  for (let i = 0; i < length; i++) {
    // 252 is the largest multiple of 36 below 256; rejecting above it keeps the draw uniform.
    let byte = pool[poolOffset++] as number;
    while (byte >= 252) {
      if (poolOffset >= POOL_SIZE) {
        pool = randomBytes(POOL_SIZE);
        poolOffset = 0;
      }
      byte = pool[poolOffset++] as number;
    }
    out += ALPHABET[byte % 36];
  }
  return out;
}

/**
 * Returns a new id in the seed's shape, `<prefix>_<unix ms>_<random>`, e.g. `wh_1733382000000_k3j9x0a1b2c3`.
 * Twelve base-36 characters (62 bits) of randomness make collisions negligible.
 */
export function newId(prefix: IdPrefix, nowMs: number): string {
  return `${prefix}_${nowMs}_${randomSuffix(12)}`;
}

/** Returns a fresh webhook signing secret: 32 random bytes, hex-encoded (64 ASCII characters). */
export function newSecret(): string {
  return randomBytes(32).toString("hex");
}
