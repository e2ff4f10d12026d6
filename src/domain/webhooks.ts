import { HeraldError } from "./errors.js";
import { isKnownEventType } from "./event-types.js";
import { hasControlCharacter, hasLoneSurrogate } from "./text.js";

/** A registered webhook endpoint, as stored. */
export interface Webhook {
  id: string;
  name: string;
  url: string;
  /** Event types this endpoint receives. */
  events: string[];
  /** Signing key of every delivery; never shown after creation. */
  secret: string;
  /** Inactive webhooks receive no new deliveries, and their pending ones wait. */
  active: boolean;
  createdAt: number;
  updatedAt: number;
}

/** A webhook as the API shows it: timestamps in ISO 8601 and the secret masked unless `revealSecret`. */
export interface WebhookView {
  id: string;
  name: string;
  url: string;
  events: string[];
  secret: string;
  active: boolean;
  createdAt: string;
  updatedAt: string;
}

/** What a client sends to register a webhook. */
export interface WebhookInput {
  name: string;
  url: string;
  events: string[];
  secret?: string;
  active?: boolean;
}

/** What a client sends to change a webhook; absent fields keep their value. */
export interface WebhookPatch {
  name?: string;
  url?: string;
  events?: string[];
  active?: boolean;
  /** Only the masked value is accepted, so a webhook read with GET can be sent back as it is. */
  secret?: unknown;
}

export const MASKED_SECRET = "***";

/** Shows a webhook to an API client. */
export function viewWebhook(webhook: Webhook, revealSecret = false): WebhookView {
  return {
    id: webhook.id,
    name: webhook.name,
    url: webhook.url,
    events: [...webhook.events],
    secret: revealSecret ? webhook.secret : MASKED_SECRET,
    active: webhook.active,
    createdAt: new Date(webhook.createdAt).toISOString(),
    updatedAt: new Date(webhook.updatedAt).toISOString(),
  };
}

/** Trims `name`; throws a 400 naming the field when nothing but spaces is left. */
export function checkWebhookName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === "") {
    throw new HeraldError(
      "validation_failed",
      "name must not be empty or only spaces. Give the webhook a name people will recognise.",
      "name",
    );
  }
  // Refused on every store alike: PostgreSQL cannot store it.
  if (trimmed.includes("\u0000")) {
    throw new HeraldError(
      "validation_failed",
      "name contains the NUL character (\\u0000). Remove it and send the request again.",
      "name",
    );
  }
  if (hasLoneSurrogate(trimmed)) throw loneSurrogate("name");
  // A name is shown in lists, logs and dashboards: a line break or escape code would garble them.
  if (hasControlCharacter(trimmed)) {
    throw new HeraldError(
      "validation_failed",
      "name contains a control character (a line break, tab or escape code, for example). Use printable characters only.",
      "name",
    );
  }
  return trimmed;
}

function loneSurrogate(field: string): HeraldError {
  return new HeraldError(
    "validation_failed",
    `${field} contains half of a UTF-16 surrogate pair (such as \\ud800) without its other half, which is not a character. Send the full character, or remove it.`,
    field,
  );
}

/**
 * Throws a 400 naming `field` unless `secret` can sign deliveries exactly as given: not the mask
 * every answer after creation shows, not only spaces, and only characters every store keeps.
 */
export function checkSecret(secret: string, field = "secret"): string {
  if (secret === MASKED_SECRET) {
    throw new HeraldError(
      "validation_failed",
      `${field} cannot be "${MASKED_SECRET}": that is how Herald hides secrets in its answers. Leave ${field} out and Herald generates one, or send a secret of your own.`,
      field,
    );
  }
  if (secret.trim() === "") {
    throw new HeraldError(
      "validation_failed",
      `${field} must not be empty or only spaces. Leave it out and Herald generates one.`,
      field,
    );
  }
  if (hasControlCharacter(secret)) {
    throw new HeraldError(
      "validation_failed",
      `${field} contains a control character (a NUL, a tab, a line break or similar). Remove it and send the request again.`,
      field,
    );
  }
  if (hasLoneSurrogate(secret)) throw loneSurrogate(field);
  return secret;
}

/**
 * Throws a 400 naming the field unless `url` is an absolute http(s) URL; returns it as given, less
 * surrounding spaces, so a user reads back the URL they registered.
 */
export function checkWebhookUrl(input: string): string {
  const url = input.trim();
  // The URL parser would drop tabs and line breaks silently; no store keeps NUL.
  if (hasControlCharacter(url)) {
    throw new HeraldError(
      "validation_failed",
      "url contains a control character (a tab, a line break or similar). Remove it and send the request again.",
      "url",
    );
  }
  if (hasLoneSurrogate(url)) throw loneSurrogate("url");
  // The URL parser would turn these into something else than what is shown: encoded spaces, and
  // backslashes read as slashes.
  if (/\s/.test(url)) {
    throw new HeraldError(
      "validation_failed",
      "url contains a space. Encode spaces as %20 and send the request again.",
      "url",
    );
  }
  if (url.includes("\\")) {
    throw new HeraldError(
      "validation_failed",
      "url contains a backslash (\\). Separate the parts of a URL with / and send the request again.",
      "url",
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HeraldError(
      "validation_failed",
      `url must be an absolute http:// or https:// URL, for example https://example.com/webhook; got '${url}'.`,
      "url",
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new HeraldError(
      "validation_failed",
      `url must use http:// or https://; '${parsed.protocol}' cannot receive webhooks.`,
      "url",
    );
  }
  // The parser takes 'http:host' and 'http:///host' as 'http://host'; a URL is shown as registered,
  // so it must already be written in full.
  if (!/^https?:\/\/[^/?#@]/i.test(url)) {
    throw new HeraldError(
      "validation_failed",
      `url must start with http:// or https:// followed by a host name, for example https://example.com/webhook; got '${url}'.`,
      "url",
    );
  }
  if (parsed.port === "0") {
    throw new HeraldError(
      "validation_failed",
      "url names port 0, which nothing can listen on. Use the receiver's port (or none, for 80 and 443).",
      "url",
    );
  }
  if (parsed.username || parsed.password) {
    throw new HeraldError(
      "validation_failed",
      "url must not contain a user name or password; use the webhook secret to authenticate deliveries.",
      "url",
    );
  }
  return url;
}

/** Throws a 400 naming the first unknown event type; returns the list without repeats. */
export function checkEventTypes(events: string[]): string[] {
  const unknown = events.find((name) => !isKnownEventType(name));
  if (unknown !== undefined) {
    throw new HeraldError(
      "unknown_event_type",
      `events contains an unknown event type '${unknown}'. GET /api/webhooks/events/types lists the valid ones.`,
      "events",
    );
  }
  return [...new Set(events)];
}

/** True when `webhook` should receive an event of type `eventType`. */
export function webhookReceives(webhook: Webhook, eventType: string): boolean {
  return webhook.active && webhook.events.includes(eventType);
}
