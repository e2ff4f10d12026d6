/** API key check for the management routes: `Authorization: Bearer <key>` (or `X-API-Key`). */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from "fastify";
import { createLogThrottle } from "../../domain/log-throttle.js";
import { constantTimeEqual } from "../../domain/signing.js";
import { errorBody } from "./error-mapper.js";

type Presented = { key: string } | { refusal: string; why: string };

const NO_KEY =
  "This route needs an API key. Send the header Authorization: Bearer <your API key> (the key is HERALD_API_KEY, or the one saved in the data directory's api-key file).";

const CHALLENGE = 'Bearer realm="herald"';

/** How many times `name` (lower case) appears among the request's raw headers. */
function headerCount(rawHeaders: string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const header = rawHeaders[i] as string;
    if (header.length === name.length && header.toLowerCase() === name) count++;
  }
  return count;
}

function moreThanOne(header: string): Presented {
  return {
    refusal: `The request carries more than one ${header} header, and Herald does not guess which one is meant. Send exactly one, with your API key.`,
    why: `it sent more than one ${header} header`,
  };
}

function presentedKey(request: FastifyRequest): Presented {
  const { authorization } = request.headers;
  // An empty Authorization header says nothing; X-API-Key may still carry the key.
  if (authorization) {
    // Node keeps only the first of several Authorization headers.
    if (headerCount(request.raw.rawHeaders, "authorization") > 1)
      return moreThanOne("Authorization");
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    const key = match?.[1]?.trim();
    if (key !== undefined) return { key };
    return {
      refusal:
        "The Authorization header must have the form Bearer <your API key>; Herald takes no other scheme.",
      why: "its Authorization header is not of the form Bearer <key>",
    };
  }
  const apiKeyHeader = request.headers["x-api-key"];
  if (apiKeyHeader !== undefined) {
    if (headerCount(request.raw.rawHeaders, "x-api-key") > 1) return moreThanOne("X-API-Key");
    return { key: String(apiKeyHeader).trim() };
  }
  return { refusal: NO_KEY, why: "it sent no API key" };
}

/** How often a line about refused API requests is written, per reason, with how many there were. */
const REFUSED_LOG_INTERVAL_MS = 60_000;

/**
 * An onRequest hook that refuses requests without the right key. Refusals are logged as warnings,
 * at most once a minute per reason with a count, so an operator sees a client with an old key (or
 * someone guessing) without a line per request.
 */
export function requireApiKey(apiKey: string, log: FastifyBaseLogger, now: () => number) {
  const throttle = createLogThrottle(REFUSED_LOG_INTERVAL_MS, now);
  const note = (request: FastifyRequest, why: string) => {
    const count = throttle.due(why);
    if (count === undefined) return;
    const path = request.url.split("?")[0] ?? "";
    const what =
      count === 1
        ? `Refused an API request (${request.method} ${path}) from ${request.ip} with 401: ${why}.`
        : `Refused ${count} API requests with 401 since the last line; the latest, ${request.method} ${path} from ${request.ip}: ${why}.`;
    log.warn(
      { method: request.method, path, from: request.ip, refused: count },
      `${what} A client of yours needs HERALD_API_KEY (or the key in the data directory's api-key file) as Authorization: Bearer <key>; if none is yours, someone is trying keys. This line repeats at most once a minute for this reason.`,
    );
  };
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const presented = presentedKey(request);
    // HTTP's 401 names the scheme to use (RFC 9110; the error code as RFC 6750 gives it).
    if ("refusal" in presented) {
      note(request, presented.why);
      return reply
        .status(401)
        .header("www-authenticate", CHALLENGE)
        .send(errorBody("unauthorized", presented.refusal));
    }
    if (!constantTimeEqual(presented.key, apiKey)) {
      note(request, "its API key is not the one Herald uses");
      return reply
        .status(401)
        .header("www-authenticate", `${CHALLENGE}, error="invalid_token"`)
        .send(
          errorBody(
            "unauthorized",
            "The API key is not valid. Check that it is HERALD_API_KEY exactly (or, when that is not set, the key in the data directory's api-key file), sent as Authorization: Bearer <key> (or X-API-Key: <key>).",
          ),
        );
    }
  };
}
