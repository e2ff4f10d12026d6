/** Per-source request rate limits: a token bucket per key, refilled continuously. */
import type { Clock } from "./clock.js";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Token buckets; a bucket holds up to two seconds' worth of requests, so short bursts pass. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly clock: Clock) {}

  /**
   * Takes one request for `key` at `perSecond`. Returns 0 when allowed, else the seconds to wait
   * before the next request would be.
   */
  take(key: string, perSecond: number): number {
    const bucket = this.refilled(key, perSecond);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return this.waitFor(bucket, perSecond);
  }

  /** Like `take`, but takes nothing: whether a request for `key` would be allowed now. */
  check(key: string, perSecond: number): number {
    const bucket = this.refilled(key, perSecond);
    return bucket.tokens >= 1 ? 0 : this.waitFor(bucket, perSecond);
  }

  private refilled(key: string, perSecond: number): Bucket {
    const now = this.clock.now();
    const capacity = Math.max(1, perSecond * 2);
    const bucket = this.buckets.get(key) ?? { tokens: capacity, updatedAt: now };
    bucket.tokens = Math.min(
      capacity,
      bucket.tokens + ((now - bucket.updatedAt) / 1000) * perSecond,
    );
    bucket.updatedAt = now;
    this.buckets.set(key, bucket);
    return bucket;
  }

  private waitFor(bucket: Bucket, perSecond: number): number {
    return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
  }
}
