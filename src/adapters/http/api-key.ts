/** API key check for the management routes: `Authorization: Bearer <key>` (or `X-API-Key`). */
import type { FastifyReply, FastifyRequest } from "fastify";
import { constantTimeEqual } from "../../domain/signing.js";
import { errorBody } from "./error-mapper.js";

function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (authorization) {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    return match?.[1]?.trim();
  }
  const header = request.headers["x-api-key"];
  return Array.isArray(header) ? header[0] : header;
}

/** An onRequest hook that refuses requests without the right key. */
export function requireApiKey(apiKey: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const key = presentedKey(request);
    if (key === undefined) {
      return reply
        .status(401)
        .send(
          errorBody(
            "unauthorized",
            "This route needs an API key. Send the header Authorization: Bearer <your API key> (the key is HERALD_API_KEY, or the one saved in the data directory's api-key file).",
          ),
        );
    }
    if (!constantTimeEqual(key, apiKey)) {
      return reply
        .status(401)
        .send(
          errorBody(
            "unauthorized",
            "The API key is not valid. Check that Authorization: Bearer <key> carries HERALD_API_KEY exactly.",
          ),
        );
    }
  };
}
