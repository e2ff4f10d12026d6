/**
 * PostgreSQL cannot store the NUL character (U+0000) in text, where SQLite can: the driver's error
 * for it is the client's input at fault, not Herald, and is answered 400.
 */
const UNSTORABLE_TEXT = new Set(["22021", "22P05"]);

/** True when `error` is PostgreSQL refusing a character in a text value. */
export function isUnstorableText(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code } = error as { code?: unknown };
  return typeof code === "string" && UNSTORABLE_TEXT.has(code);
}
