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
import { isAscii, isUtf8 } from "node:buffer";
import { errorCodes, type FastifyInstance } from "fastify";
import { HeraldError } from "../../domain/errors.js";

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;
/** Charsets in which a JSON body is never UTF-8, whatever its bytes. */
const NEVER_UTF8 = /^(utf-?(16|32)|ucs-)/i;

/**
 * The charset a Content-Type declares when the body cannot be read as UTF-8 under it: UTF-16 and
 * UTF-32 never, any other only when a byte is beyond ASCII (ASCII reads the same in all of them).
 */
function unreadableCharset(contentType: string | undefined, bytes: Buffer): string | undefined {
  const charset = contentType === undefined ? undefined : CHARSET.exec(contentType)?.[1];
  if (charset === undefined || /^utf-?8$/i.test(charset)) return undefined;
  if (NEVER_UTF8.test(charset) || !isAscii(bytes)) return charset;
  return undefined;
}

const UNREADABLE_CHARSET_MESSAGE = (charset: string) =>
  `The body is declared as charset '${charset}', and Herald reads JSON only as UTF-8. Send the body in UTF-8 with Content-Type: application/json.`;

/**
 * Why a JSON route would refuse a body of `contentType` whatever its bytes, or undefined: a media
 * type other than application/json, or a charset in which JSON is never UTF-8. Told before the body
 * is read, to a client that waits for 100 Continue.
 */
export function refusedContentType(contentType: string | undefined): Error | undefined {
  if (contentType === undefined) return undefined;
  const mediaType = contentType.split(";", 1)[0]?.trim().toLowerCase();
  if (mediaType !== "application/json") return new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE();
  const charset = CHARSET.exec(contentType)?.[1];
  if (charset !== undefined && NEVER_UTF8.test(charset)) {
    return new HeraldError("unsupported_media_type", UNREADABLE_CHARSET_MESSAGE(charset));
  }
  return undefined;
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
    const bytes = body as Buffer;
    const charset = unreadableCharset(request.headers["content-type"], bytes);
    if (charset !== undefined) {
      done(
        new HeraldError("unsupported_media_type", UNREADABLE_CHARSET_MESSAGE(charset)),
        undefined,
      );
      return;
    }
    if (!isUtf8(bytes)) {
      done(
        new HeraldError(
          "malformed_json",
          "The request body is not valid UTF-8 text. Send the JSON encoded as UTF-8.",
        ),
        undefined,
      );
      return;
    }
    const raw = bytes.toString("utf8");
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
