import { createHash } from "node:crypto";
import type { Clock } from "./clock.js";
import type { OutgoingEvent } from "./deliveries.js";
import { HeraldError } from "./errors.js";
import { newId } from "./ids.js";
import {
  type BodyKind,
  type Headers,
  type IncomingEvent,
  type IncomingEventDetail,
  type IncomingStatus,
  incomingDedupeKey,
  incomingEventName,
  storableHeaders,
} from "./incoming.js";
import { undeliverableNumber } from "./json-numbers.js";
import type { IncomingQuery, Logger, PendingEvent, Store } from "./ports.js";
import type { RateLimiter } from "./rate-limit.js";
import { type RouteDecision, routeIncoming } from "./routing.js";
import type { ResolvedSource, SourceRegistry } from "./source-registry.js";
import { counted, dedupeKeyText } from "./text.js";
import { webhookReceives } from "./webhooks.js";

/** An incoming request as the HTTP layer hands it over. */
export interface IncomingHttpRequest {
  rawBody: Buffer;
  headers: Headers;
  contentType: string | undefined;
}

/** The answer to an accepted incoming webhook. */
export interface ReceiveResult {
  eventId: string;
  /** True when this webhook was received before; it is not stored or routed again. */
  duplicate: boolean;
  status: IncomingStatus;
  verified: boolean;
}

/** Reads a body for routing; throws 415 for a kind or charset it cannot read and 400 for a broken body. */
export interface BodyReader {
  kind(contentType: string | undefined): BodyKind | undefined;
  /** Reads `rawBody` as the text `contentType` declares: UTF-8 only. */
  parse(rawBody: Buffer, kind: BodyKind, contentType: string | undefined): unknown;
}

/** Receiving, inspecting and replaying webhooks that other services push to Herald. */
export interface IncomingService {
  /**
   * Checks, before the body is read, that the source exists and the request is within its rate and
   * size limits. Answers at once (no promise) when the source is cached, as it nearly always is.
   */
  admit(
    sourceName: string,
    contentLength: number | undefined,
    contentType: string | undefined,
  ): Promise<void> | undefined;
  receive(sourceName: string, request: IncomingHttpRequest): Promise<ReceiveResult>;
  list(query: IncomingQuery): Promise<{ events: IncomingEvent[]; nextCursor: string | undefined }>;
  /** A stored webhook with the outgoing events it was routed to. */
  get(id: string): Promise<IncomingEventDetail>;
  /** Routes a stored webhook again with its source's current rules. */
  replay(id: string): Promise<{ event: IncomingEventDetail; deliveries: number }>;
}

/** Most outgoing events shown with one incoming webhook: replays add one each. */
const ROUTED_EVENTS_SHOWN = 100;

function notFound(id: string): HeraldError {
  return new HeraldError(
    "incoming_event_not_found",
    `Incoming webhook not found: nothing has the id '${id}'. GET /api/incoming-events lists what was received.`,
  );
}

function tooLarge(source: ResolvedSource): HeraldError {
  return new HeraldError(
    "payload_too_large",
    `The request body is larger than the ${counted(source.settings.maxBodyBytes, "byte")} source '${source.source.name}' accepts. Send a smaller body, or raise the source's maxBodyBytes.`,
  );
}

/** Headers that carry a source's secret itself, never to be stored. */
function secretHeaders(source: ResolvedSource): string[] {
  const spec = source.source.verifier;
  return spec.type === "token" && spec.header ? [spec.header] : [];
}

/** Builds the incoming use cases. */
export function createIncomingService(deps: {
  store: Store;
  clock: Clock;
  logger: Logger;
  sources: SourceRegistry;
  bodies: BodyReader;
  rateLimiter: RateLimiter;
}): IncomingService {
  const { store, clock, logger, sources, bodies, rateLimiter } = deps;
  // The answer names no other source: whoever calls this route has shown no key, and a list would
  // point them at sources that take unverified webhooks.
  function unknown(name: string): Promise<never> {
    return Promise.reject(
      new HeraldError(
        "unknown_service",
        `Unknown incoming source '${name}': nothing receives webhooks at /api/incoming-webhooks/${name}. Check the URL the sender uses; GET /api/sources (with the API key) lists the sources, and POST /api/sources creates one.`,
      ),
    );
  }

  /** The source named `name`, from the cache when it holds it; undefined when there is none. */
  async function find(name: string): Promise<ResolvedSource | undefined> {
    return sources.cached(name)?.value ?? (await sources.resolve(name));
  }

  async function resolve(
    name: string,
    missing: (name: string) => Promise<never> = unknown,
  ): Promise<ResolvedSource> {
    return (await find(name)) ?? missing(name);
  }

  /** Turns a routing decision into the incoming record's outcome and the event to store with it. */
  function applyDecision(
    decision: RouteDecision | undefined,
    incomingEventId: string,
    now: number,
  ): {
    status: IncomingStatus;
    outgoingEventId: string | null;
    routeError: string | null;
    route?: PendingEvent;
  } {
    if (decision === undefined)
      return { status: "received", outgoingEventId: null, routeError: null };
    if (decision.kind === "unrouted")
      return { status: "unrouted", outgoingEventId: null, routeError: null };
    if (decision.kind === "failed")
      return { status: "failed", outgoingEventId: null, routeError: decision.reason };
    let body: string;
    try {
      body = JSON.stringify({
        event: decision.eventType,
        timestamp: new Date(now).toISOString(),
        data: decision.data,
      });
    } catch (error) {
      // Nested past the call stack: the webhook is kept (it was verified); only the event fails.
      if (!(error instanceof RangeError)) throw error;
      return {
        status: "failed",
        outgoingEventId: null,
        routeError: `rule ${decision.rule + 1} matched, but its data is nested too deeply to be sent as an event. Route a shallower part of the body (the rule's 'data' path), or have the sender send flatter data.`,
      };
    }
    // The raw webhook keeps every number as sent; an event would change some without a word.
    const problem = undeliverableNumber(decision.data, body);
    if (problem) {
      return {
        status: "failed",
        outgoingEventId: null,
        routeError: `rule ${decision.rule + 1} matched, but ${problem.message}`,
      };
    }
    const event: OutgoingEvent = {
      id: newId("evt", now),
      type: decision.eventType,
      body,
      createdAt: now,
      incomingEventId,
    };
    return {
      status: "routed",
      outgoingEventId: event.id,
      routeError: null,
      route: {
        event,
        selectTargets: (active) =>
          active.filter((webhook) => webhookReceives(webhook, decision.eventType)),
        newDeliveryId: () => newId("del", now),
      },
    };
  }

  /**
   * Refuses a request over its source's rate. Only a verified request uses up the rate (`take`):
   * before the body is read, a request is refused only if the rate is already used up, so
   * forged requests cannot crowd out the real sender's.
   */
  function checkRate(source: ResolvedSource, take: boolean): void {
    const limit = source.settings.rateLimitPerSecond;
    if (limit === null) return;
    const name = source.source.name;
    const wait = take ? rateLimiter.take(name, limit) : rateLimiter.check(name, limit);
    if (wait > 0) {
      const error = new HeraldError(
        "rate_limited",
        `Source '${name}' accepts ${counted(limit, "request")} per second and this one is over the limit. Wait ${wait} s (see Retry-After) and send it again.`,
      );
      error.retryAfterSeconds = wait;
      throw error;
    }
  }

  /**
   * Everything that can refuse a request before its body is read: a source without a secret (fail
   * closed), its rate and size limits, a content type it cannot read. Returns how to read the body
   * and what verifies it.
   */
  function checkBeforeBody(
    source: ResolvedSource,
    contentLength: number | undefined,
    contentType: string | undefined,
  ): { kind: BodyKind; verifier: NonNullable<ResolvedSource["verifier"]> } {
    const { verifier } = source;
    if (!verifier) {
      throw new HeraldError(
        "incoming_secret_missing",
        `Incoming webhooks for '${source.source.name}' are refused because no secret is configured. Set ${source.secretSetting ?? "the source's secret"} and restart Herald.`,
      );
    }
    checkRate(source, false);
    if (contentLength !== undefined && contentLength > source.settings.maxBodyBytes)
      throw tooLarge(source);
    // A request with no body has no media type to refuse: it is read as an empty JSON body.
    const kind = bodies.kind(contentType) ?? (contentLength === 0 ? "json" : undefined);
    if (kind === undefined) {
      throw new HeraldError(
        "unsupported_media_type",
        `Content-Type '${contentType ?? "(none)"}' is not accepted. Send application/json, application/x-www-form-urlencoded, application/xml or text/plain.`,
      );
    }
    return { kind, verifier };
  }

  function decide(
    source: ResolvedSource,
    eventName: string | null,
    body: unknown,
  ): RouteDecision | undefined {
    return source.source.rules.length === 0
      ? undefined
      : routeIncoming(source.source.rules, eventName, body);
  }

  return {
    admit(sourceName, contentLength, contentType) {
      const hit = sources.cached(sourceName);
      if (!hit) {
        return resolve(sourceName).then((source) => {
          checkBeforeBody(source, contentLength, contentType);
        });
      }
      if (!hit.value) return unknown(sourceName);
      checkBeforeBody(hit.value, contentLength, contentType);
      return undefined;
    },

    async receive(sourceName, request) {
      const source = await resolve(sourceName);
      const { kind, verifier } = checkBeforeBody(
        source,
        request.rawBody.length,
        request.contentType,
      );
      // The body is read only once the signature holds (a scheme may want it then, for the
      // sender's event id): an unsigned request learns nothing about how its body would be read.
      let parsed: { value: unknown } | undefined;
      const readBody = () => {
        parsed ??= { value: bodies.parse(request.rawBody, kind, request.contentType) };
        return parsed.value;
      };
      const now = clock.now();
      const verification = verifier.verify(
        {
          rawBody: request.rawBody,
          headers: request.headers,
          get body() {
            return readBody();
          },
        },
        now,
        source.settings.toleranceSeconds,
      );
      if (!verification.ok) throw new HeraldError(verification.code, verification.reason);
      checkRate(source, true);
      const body = readBody();
      const eventName = incomingEventName(request.headers, body, kind);
      const id = newId("evt", now);
      const outcome = applyDecision(decide(source, eventName, body), id, now);
      const verified = verification.scheme !== "none";
      // An unverified sender's ids are not trusted: it could claim another webhook's id. Without
      // an id, the same body under another event name is another event, so the name is hashed too.
      const senderKey =
        verification.dedupeKey ??
        (verified ? incomingDedupeKey(sourceName, request.headers, body) : null);
      // A sender's id is kept as every store can keep it, so that a repeat finds the first copy.
      const dedupeKey =
        (senderKey === null ? null : dedupeKeyText(senderKey)) ??
        `sha256:${createHash("sha256")
          .update(eventName ?? "")
          .update("\n")
          .update(request.rawBody)
          .digest("hex")}`;
      const result = await store.saveIncoming(
        {
          id,
          service: sourceName,
          eventName,
          dedupeKey,
          headers: storableHeaders(request.headers, secretHeaders(source)),
          rawBody: request.rawBody,
          contentType: request.contentType ?? null,
          verifiedBy: verification.scheme,
          verified,
          status: outcome.status,
          outgoingEventId: outcome.outgoingEventId,
          routeError: outcome.routeError,
          receivedAt: now,
        },
        outcome.route,
      );
      if (result.duplicate) {
        const first = await store.getIncoming(result.eventId);
        return {
          eventId: result.eventId,
          duplicate: true,
          status: first?.status ?? outcome.status,
          verified,
        };
      }
      if (outcome.status === "failed") {
        logger.warn(
          { source: sourceName, eventId: result.eventId },
          `Could not route incoming webhook ${result.eventId}: ${outcome.routeError}.`,
        );
      }
      return {
        eventId: result.eventId,
        duplicate: result.duplicate,
        status: outcome.status,
        verified,
      };
    },

    list: (query) => store.listIncoming(query),

    async get(id) {
      const [event, routedEvents] = await Promise.all([
        store.getIncoming(id),
        store.routedEvents(id, ROUTED_EVENTS_SHOWN),
      ]);
      if (!event) throw notFound(id);
      // Headers stored before credentials were kept out as they are now are masked on the way
      // out too: what is shown never holds a credential.
      const source = await find(event.service);
      const headers = storableHeaders(event.headers, source ? secretHeaders(source) : []);
      return { ...event, headers, routedEvents };
    },

    async replay(id) {
      const event = await store.getIncoming(id);
      if (!event) throw notFound(id);
      // The caller is no sender: it is told how to bring the source back, not to check a URL.
      const source = await resolve(event.service, (name) =>
        Promise.reject(
          new HeraldError(
            "unknown_service",
            `Incoming webhook ${id} came to source '${name}', which no longer exists, so it has no rules to route it by. Create the source again (POST /api/sources, name '${name}') with its rules, then replay it.`,
          ),
        ),
      );
      const kind = bodies.kind(event.contentType ?? "application/json") ?? "json";
      const body = bodies.parse(event.rawBody, kind, event.contentType ?? undefined);
      const now = clock.now();
      // With no rules the outcome is `received`, as when the webhook first came.
      const outcome = applyDecision(decide(source, event.eventName, body), id, now);
      const deliveries = await store.recordRouting(
        id,
        {
          status: outcome.status,
          outgoingEventId: outcome.outgoingEventId,
          routeError: outcome.routeError,
        },
        outcome.route,
      );
      // Read back, so the answer lists the new event among those routed before, as GET does; the
      // outcome shown is this replay's own, whatever replays of the same webhook ran beside it.
      const detail = await this.get(id);
      return {
        event: {
          ...detail,
          status: outcome.status,
          outgoingEventId: outcome.outgoingEventId,
          routeError: outcome.routeError,
        },
        deliveries,
      };
    },
  };
}
