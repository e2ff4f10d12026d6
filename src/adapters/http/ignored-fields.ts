/**
 * Fields a request body carries that its route does not read. They are not refused (clients may
 * send more than the contract's fields), but a misspelt `actve` or a `payload` sent for `data`
 * would otherwise change nothing without a word; the answer says so in `warnings`.
 */
import { closestName, listed } from "../../domain/text.js";

/** The fields a body's route reads, and those a client may send back as it read them. */
export interface BodyFields {
  /** What the body is, in a message: "a webhook", "a trigger". */
  what: string;
  reads: readonly string[];
  /** Read-only fields of what a GET shows, sent back unchanged in a read-modify-write. */
  echoed?: readonly string[];
  /** Advice for a field often sent by mistake, by its name. */
  advice?: Readonly<Record<string, string>>;
}

/** At most this many fields are named, so a large stray object does not make a large answer. */
const MOST_NAMED = 10;

/** One warning per field `body` has that `fields` does not read; an empty list when none. */
export function ignoredFieldWarnings(body: unknown, fields: BodyFields): string[] {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return [];
  const ignored = Object.keys(body).filter(
    (name) => !fields.reads.includes(name) && !fields.echoed?.includes(name),
  );
  const warnings = ignored.slice(0, MOST_NAMED).map((name) => {
    const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
    const advice = fields.advice?.[name];
    if (advice) return `Field ${shown} was ignored: ${advice}`;
    const meant = closestName(name, fields.reads);
    const hint = meant ? ` Did you mean "${meant}"?` : "";
    return `Field ${shown} is not read for ${fields.what} and was ignored.${hint} The fields read are ${listed(fields.reads.map((read) => `"${read}"`))}.`;
  });
  if (ignored.length > MOST_NAMED) {
    warnings.push(`${ignored.length - MOST_NAMED} more fields were ignored too.`);
  }
  return warnings;
}

/** `answer` with a `warnings` list added when there are any, and as it is when there are none. */
export function withWarnings<T extends object>(
  answer: T,
  warnings: string[],
): T | (T & { warnings: string[] }) {
  return warnings.length === 0 ? answer : { ...answer, warnings };
}
