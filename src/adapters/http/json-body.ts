/**
 * The API's JSON body parser: Fastify's own (which refuses `__proto__` and `constructor.prototype`
 * keys), with these differences a client can see:
 * - a request to a route that takes no body (a DELETE, a retry) whose client sends
 *   `Content-Type: application/json` out of habit, with no body, is read as having no body;
 * - a UTF-8 byte order mark, which some editors and shells put first, is skipped;
 * - a body is read as UTF-8 only, where it would otherwise turn silently into replacement
 *   characters: bytes that are not UTF-8 are a 400, and another declared charset is a 415 unless
 *   the body is plain ASCII, which reads the same in every charset a JSON client would name;
 * - a body refused for a forbidden key is told so, rather than called invalid JSON, and invalid
 *   JSON is told where the syntax breaks.
 */
import { errorCodes, type FastifyInstance } from "fastify";
import { HeraldError } from "../../domain/errors.js";
import { charsetRefusal, neverUtf8Charset, readUtf8, type TextBodyWords } from "../utf8-text.js";

const JSON_WORDS: TextBodyWords = {
  reads: "JSON",
  declare: " with Content-Type: application/json",
  content: "the JSON",
  code: "malformed_json",
};

/**
 * Why a JSON route would refuse a body of `contentType` whatever its bytes, or undefined: a media
 * type other than application/json, or a charset in which JSON is never UTF-8. Told before the body
 * is read, to a client that waits for 100 Continue.
 */
export function refusedContentType(contentType: string | undefined): Error | undefined {
  if (contentType === undefined) return undefined;
  const mediaType = contentType.split(";", 1)[0]?.trim().toLowerCase();
  if (mediaType !== "application/json") return new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE();
  const charset = neverUtf8Charset(contentType);
  return charset === undefined ? undefined : charsetRefusal(charset, JSON_WORDS);
}

/** Why `text` is not JSON, or undefined when it is. */
function syntaxError(text: string): string | undefined {
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

export function useJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    let raw: string;
    try {
      raw = readUtf8(body as Buffer, request.headers["content-type"], JSON_WORDS);
    } catch (error) {
      done(error as Error, undefined);
      return;
    }
    const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    if (text.length === 0 && !request.routeOptions.schema?.body) {
      done(null, undefined);
      return;
    }
    parseJson(request, text, (error, value) => {
      if (!error || text.length === 0) {
        done(error, value);
        return;
      }
      const syntax = syntaxError(text);
      done(
        new HeraldError(
          "malformed_json",
          syntax !== undefined
            ? `The request body is not valid JSON (${syntax}). Check the JSON syntax.`
            : "The JSON body has a key named __proto__ or constructor.prototype, which Herald refuses for safety. Rename that key and send the request again.",
        ),
        undefined,
      );
    });
  });
}
