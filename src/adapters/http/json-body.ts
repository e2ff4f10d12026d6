/**
 * The API's JSON body parser: Fastify's own (which refuses `__proto__` and `constructor.prototype`
 * keys), with three differences a client can see. A request to a route that takes no body (a
 * DELETE, a retry) whose client sends `Content-Type: application/json` out of habit, with no body,
 * is read as having no body; a UTF-8
 * byte order mark, which some editors and shells put first, is skipped; and a body refused for a
 * forbidden key is told so, rather than called invalid JSON.
 */
import type { FastifyInstance } from "fastify";
import { HeraldError } from "../../domain/errors.js";

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export function useJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const raw = body as string;
    const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    if (text.length === 0 && !request.routeOptions.schema?.body) {
      done(null, undefined);
      return;
    }
    parseJson(request, text, (error, value) => {
      if (error && isJson(text)) {
        done(
          new HeraldError(
            "malformed_json",
            "The JSON body has a key named __proto__ or constructor.prototype, which Herald refuses for safety. Rename that key and send the request again.",
          ),
          undefined,
        );
        return;
      }
      done(error, value);
    });
  });
}
