/**
 * Checks on text a client sends that Herald stores and shows again exactly as it was given, and
 * the wording of counts in messages.
 */

/** The first line of a message: libraries' (OpenSSL's, a driver's) go on with details on the next. */
export function firstLine(message: string): string {
  return message.split("\n", 1)[0]?.trim() ?? message;
}

/** "a", "a and b", "a, b and c". */
export function listed(items: readonly string[], and = "and"): string {
  return items.length > 1
    ? `${items.slice(0, -1).join(", ")} ${and} ${items.at(-1)}`
    : (items[0] ?? "");
}

/** "1 second", "2 seconds": a count with its noun (which takes an s in the plural). */
export function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** True when `text` holds a C0 control character or DEL. */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

// In a `u` regular expression, a surrogate pair is one code point: only a lone half matches.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * True when `text` holds half of a UTF-16 surrogate pair on its own (JSON can carry one as
 * `\ud800`). UTF-8 cannot encode it, so a store would keep a replacement character instead.
 */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * `text` as every store keeps it: NUL (which PostgreSQL cannot store) and lone surrogates (which
 * UTF-8 cannot encode) become U+FFFD, so that a value looked up again is the one stored.
 */
export function storableText(text: string): string {
  const wellFormed = hasLoneSurrogate(text) ? text.replace(/\p{Cs}/gu, "\uFFFD") : text;
  return wellFormed.includes("\u0000") ? wellFormed.replaceAll("\u0000", "\uFFFD") : wellFormed;
}

/** Marks a dedupe key kept escaped; an id that starts with it is escaped too, so none collide. */
const ESCAPED_KEY_MARK = "\u0001json:";

/**
 * A sender's id as a dedupe key every store can keep, and told apart from every other id: one
 * holding NUL or half a surrogate pair is kept JSON-escaped behind a mark (replacing those
 * characters, as `storableText` does, would make distinct ids one).
 */
export function dedupeKeyText(key: string): string {
  return key.includes("\u0000") || hasLoneSurrogate(key) || key.startsWith(ESCAPED_KEY_MARK)
    ? `${ESCAPED_KEY_MARK}${JSON.stringify(key)}`
    : key;
}

/**
 * True when `text` can travel in an HTTP header exactly as given: printable ASCII without spaces.
 * Node reads header bytes as Latin-1, so anything else would arrive changed.
 */
export function isHeaderToken(text: string): boolean {
  return /^[\x21-\x7e]+$/.test(text);
}

/** The name in `known` that `name` is most likely a misspelling of, if one is close enough to tell. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    // A few slips in a long name; any more and the suggestion would be a guess.
    const allowed = Math.max(2, Math.floor(candidate.length / 8));
    if (distance <= allowed && (best === undefined || distance < best.distance)) {
      best = { candidate, distance };
    }
  }
  return best?.candidate;
}

/** Letters to add, remove, change or swap with a neighbour to turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, at(i - 2, j - 2) + 1);
      }
      (rows[i] as number[])[j] = distance;
    }
  }
  return at(a.length, b.length);
}
