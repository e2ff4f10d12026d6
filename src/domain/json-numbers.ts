/**
 * Numbers an event's data cannot carry to receivers as they were sent: JSON.parse has already
 * turned them into something else, and serializing the data again would pass that on silently.
 */

/**
 * How JSON.parse changed `value` in reading it, if it did: `overflow`, beyond a double's range (it
 * became Infinity, which serializes as null); `rounded`, a whole number written out in digits past
 * 2^53 (a 64-bit id, say), whose last digits were rounded away. From 1e21 up, numbers are written
 * with an exponent, as the floats they are.
 */
export function changedInReading(value: number): "overflow" | "rounded" | undefined {
  if (!Number.isFinite(value)) return "overflow";
  if (Number.isInteger(value) && !Number.isSafeInteger(value) && Math.abs(value) < 1e21) {
    return "rounded";
  }
  return undefined;
}

/** A number in an event's data that would not arrive as sent: where it is, and what to do. */
export interface NumberProblem {
  /** Its path, from `data`: `data.a[2].b`. */
  path: string;
  message: string;
}

/**
 * The first number in `data` that cannot be delivered as sent (see `changedInReading`), with its
 * path. `serialized` is the data (or the payload holding it) as JSON: an overflow shows there as
 * null and a large whole number as 16 digits or more in a row, so most payloads need no walk.
 * Walks without recursion, for deeply nested payloads.
 */
export function undeliverableNumber(data: unknown, serialized: string): NumberProblem | undefined {
  const inexact = /\d{16}/.test(serialized);
  if (!inexact && !serialized.includes("null")) return undefined;
  const stack: Array<{ value: unknown; path: string }> = [{ value: data, path: "data" }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { value, path } = next;
    if (typeof value === "number") {
      const change = changedInReading(value);
      if (change === "overflow") {
        return {
          path,
          message: `${path} is a number too large to be sent as JSON (it would arrive as null). Send it as a string.`,
        };
      }
      if (change === "rounded" && inexact) {
        return {
          path,
          message: `${path} is a number of more digits than a JSON parser such as JavaScript's keeps: beyond ${Number.MAX_SAFE_INTEGER}, the last digits are rounded (it would arrive as ${value}). Send it as a string.`,
        };
      }
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) stack.push({ value: value[i], path: `${path}[${i}]` });
    } else if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value))
        stack.push({ value: item, path: `${path}.${key}` });
    }
  }
  return undefined;
}
