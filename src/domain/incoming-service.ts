import type { Clock } from "./clock.js";
import { HeraldError } from "./errors.js";
import { newId } from "./ids.js";
import {
  type IncomingRequest,
  type IncomingSource,
  incomingDedupeKey,
  incomingEventName,
  parseIncomingJson,
  storableHeaders,
} from "./incoming.js";
import type { Logger, Store } from "./ports.js";

/** The answer to an accepted incoming webhook. */
export interface ReceiveResult {
  eventId: string;
  /** True when this webhook was received before; it is not stored again. */
  duplicate: boolean;
}

/** Receiving webhooks that other services push to Herald. */
export interface IncomingService {
  receive(service: string, request: IncomingRequest): Promise<ReceiveResult>;
  /** Names of the sources that can receive, for error messages. */
  sourceNames(): string[];
}

/** Builds the incoming webhook use case over the configured sources. */
export function createIncomingService(deps: {
  store: Store;
  clock: Clock;
  logger: Logger;
  sources: readonly IncomingSource[];
}): IncomingService {
  const { store, clock, logger } = deps;
  const sources = new Map(deps.sources.map((source) => [source.name, source]));

  return {
    sourceNames: () => [...sources.keys()],

    async receive(service, request) {
      const source = sources.get(service);
      if (!source) {
        throw new HeraldError(
          "unknown_service",
          `Unknown incoming service '${service}'. Send webhooks to one of: ${[...sources.keys()].map((name) => `/api/incoming-webhooks/${name}`).join(", ")}.`,
        );
      }
      if (!source.verifier) {
        throw new HeraldError(
          "incoming_secret_missing",
          `Incoming webhooks for '${service}' are refused because no secret is configured. Set ${source.secretSetting} and restart Herald.`,
        );
      }
      const body = parseIncomingJson(request.rawBody);
      const now = clock.now();
      const verification = source.verifier.verify(request, now);
      if (!verification.ok) {
        logger.warn(
          { service, reason: verification.code },
          `Refused an incoming webhook for '${service}': ${verification.reason}`,
        );
        throw new HeraldError(verification.code, verification.reason);
      }
      const result = await store.saveIncoming({
        id: newId("evt", now),
        service,
        eventName: incomingEventName(request.headers, body),
        dedupeKey: incomingDedupeKey(service, request.headers, body),
        headers: storableHeaders(request.headers),
        rawBody: request.rawBody,
        verifiedBy: verification.scheme,
        receivedAt: now,
      });
      return result;
    },
  };
}
