/** API key check for the management routes: `Authorization: Bearer <key>` (or `X-API-Key`). */
import type { FastifyReply, FastifyRequest } from "fastify";
import { constantTimeEqual } from "../../domain/signing.js";
import { errorBody } from "./error-mapper.js";

type Presented = { key: string } | { refusal: string };

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
    };
  }
  const apiKeyHeader = request.headers["x-api-key"];
  if (apiKeyHeader !== undefined) {
    if (headerCount(request.raw.rawHeaders, "x-api-key") > 1) return moreThanOne("X-API-Key");
    return { key: String(apiKeyHeader).trim() };
  }
  return { refusal: NO_KEY };
}

/** An onRequest hook that refuses requests without the right key. */
export function requireApiKey(apiKey: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const presented = presentedKey(request);
    // HTTP's 401 names the scheme to use (RFC 9110; the error code as RFC 6750 gives it).
    if ("refusal" in presented) {
      return reply
        .status(401)
        .header("www-authenticate", CHALLENGE)
        .send(errorBody("unauthorized", presented.refusal));
    }
    if (!constantTimeEqual(presented.key, apiKey)) {
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
