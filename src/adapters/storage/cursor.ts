/**
 * Page cursors: an opaque, URL-safe wrapping of the position of the last row shown and, for a list
 * that belongs to something (a webhook's deliveries), of what it belongs to, so a cursor from one
 * list is not read as a position in another.
 */
import { HeraldError } from "../../domain/errors.js";

/** Wraps a row position, and the list it was read from, as a cursor. */
export function encodeCursor(position: number, list?: string): string {
  return Buffer.from(list === undefined ? `p:${position}` : `p:${position}:${list}`).toString(
    "base64url",
  );
}

/**
 * Unwraps a cursor read from `list`; a cursor Herald did not make, or made for another list, is a
 * 400 on the `cursor` field. A cursor without a list (made before lists were named) is taken as is.
 */
export function decodeCursor(cursor: string, list?: string): number {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const match = /^p:(\d{1,15})(?::(.{1,200}))?$/s.exec(text);
  if (!match) {
    throw new HeraldError(
      "validation_failed",
      "cursor is not valid. Pass the nextCursor value from the previous page unchanged.",
      "cursor",
    );
  }
  const madeFor = match[2];
  if (madeFor !== undefined && madeFor !== list) {
    throw new HeraldError(
      "validation_failed",
      "cursor belongs to another list. Pass the nextCursor value from this list's previous page, or leave cursor out to start at the first page.",
      "cursor",
    );
  }
  return Number(match[1]);
}

/** Position of the last webhook shown: webhooks are listed by creation time, then id. */
export interface WebhookPosition {
  createdAt: number;
  id: string;
}

export function encodeWebhookCursor({ createdAt, id }: WebhookPosition): string {
  return Buffer.from(`w:${createdAt}:${id}`).toString("base64url");
}

/** Unwraps a cursor of the webhook list; anything else is a 400 on the `cursor` field. */
export function decodeWebhookCursor(cursor: string): WebhookPosition {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  // Webhook ids are letters, digits and underscores; anything else was not made by Herald.
  const match = /^w:(\d{1,15}):(\w{1,200})$/.exec(text);
  if (!match) {
    throw new HeraldError(
      "validation_failed",
      "cursor is not valid for the list of webhooks. Pass the nextCursor value from the previous page of this list unchanged, or leave cursor out to start at the first page.",
      "cursor",
    );
  }
  return { createdAt: Number(match[1]), id: match[2] as string };
}
