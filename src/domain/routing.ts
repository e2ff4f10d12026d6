/**
 * Routing rules turn an incoming webhook into a Herald event, so that what Xano, Stripe or any
 * sender pushes fans out to the registered webhooks. The first rule that matches wins.
 */

/** A condition on one field of the incoming body, addressed by a dot path such as `data.table`. */
export type FieldCondition =
  | string
  | number
  | boolean
  | null
  | { in: Array<string | number | boolean | null> }
  | { exists: boolean };

/** One routing rule. */
export interface RoutingRule {
  /** Incoming event names this rule takes; absent or `*` takes any. */
  event?: string | string[];
  /** Every condition must hold: field path → value (equal), `{in: [...]}` or `{exists: bool}`. */
  where?: Record<string, FieldCondition>;
  /** The Herald event type to emit. */
  emit: string;
  /** Dot path of the part of the body that becomes the event's `data`; absent means the whole body. */
  data?: string;
}

/** What routing decided for one incoming webhook. */
export type RouteDecision =
  | { kind: "routed"; eventType: string; data: unknown; rule: number }
  | { kind: "unrouted" }
  | { kind: "failed"; reason: string };

const MISSING = Symbol("missing");

/** Reads a dot path (`data.record.name`, `items.0.id`) from a parsed body. */
export function readPath(body: unknown, path: string): unknown {
  let current: unknown = body;
  for (const key of path.split(".")) {
    if (current === null || typeof current !== "object") return MISSING;
    if (!Object.hasOwn(current, key)) return MISSING;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function holds(value: unknown, condition: FieldCondition): boolean {
  if (condition !== null && typeof condition === "object") {
    if ("in" in condition)
      return value !== MISSING && condition.in.some((option) => option === value);
    return (value !== MISSING) === condition.exists;
  }
  return value === condition;
}

function takesEvent(rule: RoutingRule, eventName: string | null): boolean {
  if (rule.event === undefined || rule.event === "*") return true;
  const names = Array.isArray(rule.event) ? rule.event : [rule.event];
  return eventName !== null && (names.includes(eventName) || names.includes("*"));
}

/** Applies `rules` to an incoming webhook's event name and parsed body. */
export function routeIncoming(
  rules: readonly RoutingRule[],
  eventName: string | null,
  body: unknown,
): RouteDecision {
  for (const [index, rule] of rules.entries()) {
    if (!takesEvent(rule, eventName)) continue;
    const where = rule.where ?? {};
    if (!Object.entries(where).every(([path, condition]) => holds(readPath(body, path), condition)))
      continue;
    const data = rule.data === undefined ? body : readPath(body, rule.data);
    if (data === MISSING) {
      return {
        kind: "failed",
        reason: `rule ${index + 1} matched, but the body has no '${rule.data}' to use as the event's data`,
      };
    }
    // An outgoing event's data is an object, as a trigger's must be.
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      const found = data === null ? "null" : Array.isArray(data) ? "an array" : `a ${typeof data}`;
      return {
        kind: "failed",
        reason:
          rule.data === undefined
            ? `rule ${index + 1} matched, but the body is ${found}, and an event's data must be a JSON object. Set the rule's data to the path of an object in the body`
            : `rule ${index + 1} matched, but '${rule.data}' holds ${found}, and an event's data must be a JSON object. Point the rule's data at an object, or leave it out to send the whole body`,
      };
    }
    return { kind: "routed", eventType: rule.emit, data, rule: index };
  }
  return { kind: "unrouted" };
}
