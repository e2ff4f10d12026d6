/**
 * Cross-origin requests from browser pages, such as a dashboard served from another origin that
 * calls the API. Off unless HERALD_CORS_ORIGINS names origins. The API key, not the origin, is what
 * lets a request in: an allowed origin only lets a page from it send the key and read the answers.
 */
import type { FastifyInstance } from "fastify";
import { errorBody } from "./error-mapper.js";

const ALLOWED_METHODS = "GET, HEAD, POST, PUT, DELETE";
/** What a page needs besides a JSON body: the key, and the type of what it sends. */
const DEFAULT_ALLOWED_HEADERS = "Authorization, Content-Type";
/** Response headers a page may read besides the simple ones: how long to wait, which methods fit. */
const EXPOSED_HEADERS = "Retry-After, Allow";
/** How long a browser may reuse a preflight's answer. */
const PREFLIGHT_MAX_AGE_SECONDS = "600";
/** A comma-separated list of header names, as a browser writes Access-Control-Request-Headers. */
const HEADER_NAME_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

/**
 * Answers preflights and marks answers readable for pages from `origins` (exact origins, or "*"
 * for any). With no origins, a preflight is refused with a message saying which setting allows it,
 * and no answer carries CORS headers. Installed as the first hook, so that every answer, errors
 * included, is readable by an allowed page.
 */
export function useCors(app: FastifyInstance, origins: readonly string[]): void {
  const anyOrigin = origins.includes("*");
  const allowed = new Set(origins);
  app.addHook("onRequest", (request, reply, done) => {
    const { origin } = request.headers;
    if (origin === undefined) return done();
    const preflight =
      request.method === "OPTIONS" &&
      request.headers["access-control-request-method"] !== undefined;
    if (!anyOrigin) reply.header("vary", "Origin");
    if (!anyOrigin && !allowed.has(origin)) {
      if (!preflight) return done();
      reply
        .status(403)
        .send(
          errorBody(
            "cors_origin_refused",
            origins.length === 0
              ? `Browser pages may not call Herald from other origins, such as ${origin.slice(0, 200)}: HERALD_CORS_ORIGINS is not set. To allow a page's origin, set HERALD_CORS_ORIGINS to it (for example https://app.example.com) and restart Herald.`
              : `Browser pages from ${origin.slice(0, 200)} may not call Herald: that origin is not in HERALD_CORS_ORIGINS (${origins.join(", ")}). Add it there, written exactly as the browser sends it, and restart Herald.`,
          ),
        );
      return;
    }
    reply.header("access-control-allow-origin", anyOrigin ? "*" : origin);
    if (!preflight) {
      reply.header("access-control-expose-headers", EXPOSED_HEADERS);
      return done();
    }
    const requested = request.headers["access-control-request-headers"];
    reply
      .header("access-control-allow-methods", ALLOWED_METHODS)
      .header(
        "access-control-allow-headers",
        typeof requested === "string" &&
          requested.length <= 1024 &&
          HEADER_NAME_LIST.test(requested)
          ? requested
          : DEFAULT_ALLOWED_HEADERS,
      )
      .header("access-control-max-age", PREFLIGHT_MAX_AGE_SECONDS)
      .header(
        "vary",
        anyOrigin ? "Access-Control-Request-Headers" : "Origin, Access-Control-Request-Headers",
      )
      .status(204)
      .send();
  });
}
