/** Page cursors: an opaque, URL-safe wrapping of the position of the last row shown. */
import { HeraldError } from "../../domain/errors.js";

/** Wraps a row position as a cursor. */
export function encodeCursor(position: number): string {
  return Buffer.from(`p:${position}`).toString("base64url");
}

/** Unwraps a cursor; a cursor Herald did not make is a 400 on the `cursor` field. */
export function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  const match = /^p:(\d{1,15})$/.exec(text);
  if (!match) {
    throw new HeraldError(
      "validation_failed",
      "cursor is not valid. Pass the nextCursor value from the previous page unchanged.",
      "cursor",
    );
  }
  return Number(match[1]);
}
