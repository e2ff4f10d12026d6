/** The event types the platform emits, as listed in the API contract, in its order. */
export const EVENT_TYPES = [
  "user.created",
  "user.updated",
  "user.deleted",
  "auth.login",
  "auth.logout",
  "document.uploaded",
  "document.processed",
  "accessibility.request",
  "sync.started",
  "sync.completed",
  "ai.process.started",
  "ai.process.completed",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const KNOWN = new Set<string>(EVENT_TYPES);

/** True when `name` is one of the platform's event types. */
export function isKnownEventType(name: string): name is EventType {
  return KNOWN.has(name);
}
