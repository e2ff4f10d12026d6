import type { AttemptResult, DeliveryStatus } from "./deliveries.js";

/** Delays between attempts: entry i is the wait after attempt i+1 fails. Its length + 1 is the attempt limit. */
export type RetrySchedule = readonly number[];

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about a day. */
export const DEFAULT_RETRY_SCHEDULE: RetrySchedule = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  10 * HOUR,
];

/**
 * The longest wait a Retry-After header can ask for. It can only lengthen the schedule's wait, so a
 * receiver can neither use up a delivery's attempts in seconds nor park it forever.
 */
export const RETRY_AFTER_MAX_MS = 24 * HOUR;

/** Jitter spreads retries by ±20 % so that receivers coming back up are not hit all at once. */
export const JITTER = 0.2;

/** How one attempt ends for its delivery. */
export type AttemptOutcome =
  | { kind: "delivered" }
  /**
   * `retryAfter`: the receiver's Retry-After header set the wait (`honoured`), or asked for more
   * than the longest wait and was held to it (`capped`, with what it asked).
   */
  | {
      kind: "retry";
      delayMs: number;
      retryAfter?: { held: "honoured" } | { held: "capped"; askedMs: number };
    }
  /** `exhausted`: the schedule ran out, so the reason does not say what the last answer was. */
  | { kind: "give-up"; reason: string; exhausted?: true };

/**
 * True for responses and failures worth trying again: 408, 429, 5xx, and no response at all,
 * unless the attempt was refused by policy (a blocked address), which the next try would meet too.
 */
export function isRetryable(result: AttemptResult): boolean {
  if (!result.response) return result.refused !== true;
  const { status } = result.response;
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/** Statuses that send a client elsewhere; 304 and 300 name no single other address. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** What a refusing status most often means, and where to look. */
const CLIENT_ERROR_ADVICE: Record<number, string> = {
  400: "the receiver could not read or accept the payload. Check its logs for what it expected",
  401: "the receiver wants credentials or refused the signature. Check that it verifies with this webhook's secret and needs no other login",
  403: "the receiver refused access. Check that it verifies with this webhook's secret and that no firewall or access rule blocks Herald",
  404: "the receiver has nothing at this URL. Check the webhook's URL (path included), or make the webhook inactive if nothing listens there any more",
  405: "the receiver does not take POST at this URL. Check the webhook's URL",
  410: "the receiver says this URL is gone for good. Change the webhook's URL, or delete the webhook",
  413: "the receiver refused the body as too large. Raise its body size limit, or send less data with the event",
  415: "the receiver refused the content type. Herald sends application/json: make the receiver accept it",
  422: "the receiver read the payload but refused its content. Check its logs for the field it objected to",
};

/** Why an answer that is not retried ends the delivery, and what to do about it. */
function refusalReason(result: AttemptResult, retry: string): string {
  const status = result.response?.status;
  if (status === undefined) return "not retried, since every attempt would be refused the same way";
  if (REDIRECTS.has(status)) {
    const location = result.response?.headers.location;
    const lasting = status === 301 || status === 308;
    return `receiver answered ${status}, a ${lasting ? "lasting" : "temporary"} redirect${location ? ` to ${location}` : ""}. Herald does not follow redirects: set the webhook's URL to the address that answers directly${lasting ? "" : " (a temporary redirect may mean a login page or a load balancer in the way)"}, then send it again with ${retry}`;
  }
  const advice = CLIENT_ERROR_ADVICE[status];
  if (advice)
    return `receiver answered ${status}, which is not retried: ${advice}, then send it again with ${retry}`;
  if (status >= 400 && status < 500) {
    return `receiver answered ${status}, which is not retried: the receiver refused this delivery. Check its logs, then send it again with ${retry}`;
  }
  return `receiver answered ${status}, which is neither a success (2xx) nor retried. Check the server at the webhook URL, then send it again with ${retry}`;
}

/**
 * Decides what follows attempt number `attemptNumber` (1-based).
 * `random` returns a number in [0, 1) and is injected so tests can pin the jitter; `retry` is how
 * to send the delivery again by hand, as the reasons for giving up tell it.
 */
export function decideOutcome(
  result: AttemptResult,
  attemptNumber: number,
  schedule: RetrySchedule,
  random: () => number = Math.random,
  retry = "POST /api/webhooks/:id/deliveries/:deliveryId/retry",
): AttemptOutcome {
  const status = result.response?.status;
  if (status !== undefined && status >= 200 && status < 300) return { kind: "delivered" };
  if (!isRetryable(result)) {
    return { kind: "give-up", reason: refusalReason(result, retry) };
  }
  const scheduled = schedule[attemptNumber - 1];
  if (scheduled === undefined) {
    return {
      kind: "give-up",
      reason: `no attempts left after ${attemptNumber}. Once the receiver works, send it again with ${retry}`,
      exhausted: true,
    };
  }
  const factor = 1 - JITTER + 2 * JITTER * random();
  const delayMs = Math.round(scheduled * factor);
  const asked = result.retryAfterMs;
  if (asked === undefined || Math.min(asked, RETRY_AFTER_MAX_MS) <= delayMs) {
    return { kind: "retry", delayMs };
  }
  if (asked > RETRY_AFTER_MAX_MS) {
    return {
      kind: "retry",
      delayMs: RETRY_AFTER_MAX_MS,
      retryAfter: { held: "capped", askedMs: asked },
    };
  }
  return { kind: "retry", delayMs: asked, retryAfter: { held: "honoured" } };
}

/** The delivery status an outcome leads to. */
export function statusAfter(outcome: AttemptOutcome): DeliveryStatus {
  if (outcome.kind === "delivered") return "success";
  return outcome.kind === "retry" ? "pending" : "failed";
}

// The three forms of an HTTP date start with a day name: "Sun, 06 Nov 1994", "Sunday, 06-Nov-94",
// "Sun Nov  6 1994". Date.parse alone would also read "-5" or "2024" as dates.
const HTTP_DATE = /^[A-Za-z]{3,9}(,| [A-Za-z]{3} )/;

/**
 * Reads a Retry-After header: either delay-seconds or an HTTP date.
 * Returns milliseconds from `nowMs`, or undefined when the value is absent or unreadable, and for a
 * date that is not in the future: most likely the receiver's clock is wrong, and honouring it would
 * spend every attempt within seconds.
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * SECOND;
  if (!HTTP_DATE.test(trimmed)) return undefined;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date) || date <= nowMs) return undefined;
  return date - nowMs;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: SECOND, m: MINUTE, h: HOUR, d: 24 * HOUR };

/**
 * Reads a duration such as `500ms`, `5s`, `5m`, `2h` or `1d`. A bare number is read as seconds
 * below 1000 and as milliseconds from 1000 up (`15` and `15000` both mean 15 s).
 * Returns undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!match) return undefined;
  const unit = (match[2] ?? (Number(match[1]) >= 1000 ? "ms" : "s")).toLowerCase();
  const ms = Number(match[1]) * (UNIT_MS[unit] as number);
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/**
 * Reads a schedule such as `5s,5m,30m`: its delays, or the first entry that is not one (an empty
 * entry, between two commas, is taken for a typo). Numbers alone are read as `parseDuration` reads
 * them (seconds below 1000, milliseconds from 1000 up), but only when they all fall on one side:
 * in `5,300,1800` or `500,1000,2000` the unit cannot be told, and the list is refused with
 * `ambiguous` rather than read half in seconds and half in milliseconds.
 */
export function parseRetrySchedule(
  text: string,
): RetrySchedule | { invalid: string } | { ambiguous: true } {
  const delays: number[] = [];
  const bare = { seconds: false, milliseconds: false };
  for (const part of text.split(",").map((entry) => entry.trim())) {
    const delay = parseDuration(part);
    if (delay === undefined || part === "") return { invalid: part };
    if (/^\d+(?:\.\d+)?$/.test(part)) {
      if (Number(part) >= 1000) bare.milliseconds = true;
      else bare.seconds = true;
    }
    delays.push(delay);
  }
  return bare.seconds && bare.milliseconds ? { ambiguous: true } : delays;
}
