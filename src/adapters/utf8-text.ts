/**
 * The one rule for reading a request body as text, on the API and on incoming webhooks: UTF-8
 * only, where bytes would otherwise turn silently into replacement characters. Bytes that are not
 * UTF-8 are a 400; a body declared in another charset is a 415 unless it is plain ASCII, which
 * reads the same in every charset a client would name but UTF-16 and UTF-32 (and UCS-2/4), which
 * are refused whatever the bytes. A compressed body (`Content-Encoding`) is not read at all.
 * Limits: only the `charset` parameter of Content-Type is read; a byte order mark is the caller's
 * to skip.
 */
import { isAscii, isUtf8 } from "node:buffer";
import { type ErrorCode, HeraldError } from "../domain/errors.js";

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;
/** Charsets in which a text body is never UTF-8, whatever its bytes. */
const NEVER_UTF8 = /^(utf-?(16|32)|ucs-)/i;

/** How a kind of body is named in refusals. */
export interface TextBodyWords {
  /** What Herald reads only as UTF-8: "JSON", "webhook bodies". */
  reads: string;
  /** What follows "Send the body in UTF-8": how to declare it. */
  declare: string;
  /** What to encode as UTF-8: "the JSON", "the body". */
  content: string;
  /** The code of the 400 for bytes that are not UTF-8. */
  code: ErrorCode;
}

function declaredCharset(contentType: string | undefined): string | undefined {
  return contentType === undefined ? undefined : CHARSET.exec(contentType)?.[1];
}

/** The charset `contentType` declares when a body in it is never UTF-8, whatever its bytes. */
export function neverUtf8Charset(contentType: string | undefined): string | undefined {
  const charset = declaredCharset(contentType);
  return charset !== undefined && NEVER_UTF8.test(charset) ? charset : undefined;
}

/**
 * The charset a Content-Type declares when the body cannot be read as UTF-8 under it: UTF-16 and
 * UTF-32 never, any other only when a byte is beyond ASCII (ASCII reads the same in all of them).
 */
function unreadableCharset(contentType: string | undefined, bytes: Buffer): string | undefined {
  const charset = declaredCharset(contentType);
  if (charset === undefined || /^utf-?8$/i.test(charset)) return undefined;
  if (NEVER_UTF8.test(charset) || !isAscii(bytes)) return charset;
  return undefined;
}

/** The 415 for a body declared in `charset`, which Herald does not read. */
export function charsetRefusal(charset: string, words: TextBodyWords): HeraldError {
  return new HeraldError(
    "unsupported_media_type",
    `The body is declared as charset '${charset}', and Herald reads ${words.reads} only as UTF-8. Send the body in UTF-8${words.declare}.`,
  );
}

/**
 * `bytes` as text, or throws: a 415 for a declared charset they cannot be read in as UTF-8, a 400
 * (`words.code`) for bytes that are not UTF-8. The message never quotes the bytes.
 */
export function readUtf8(
  bytes: Buffer,
  contentType: string | undefined,
  words: TextBodyWords,
): string {
  const charset = unreadableCharset(contentType, bytes);
  if (charset !== undefined) throw charsetRefusal(charset, words);
  if (!isUtf8(bytes)) {
    throw new HeraldError(
      words.code,
      `The request body is not valid UTF-8 text. Send ${words.content} encoded as UTF-8.`,
    );
  }
  return bytes.toString("utf8");
}

/** The 415 for a body sent compressed (a Content-Encoding, or a transfer coding past chunked), or undefined. */
export function encodedBodyRefusal(headers: {
  "content-encoding"?: string | undefined;
  "transfer-encoding"?: string | undefined;
}): HeraldError | undefined {
  const content = headers["content-encoding"]?.trim();
  if (content && content.toLowerCase() !== "identity") {
    return new HeraldError(
      "unsupported_media_type",
      `The request body is encoded (Content-Encoding: ${content}), and Herald reads bodies only as they are. Send the body uncompressed, without a Content-Encoding header.`,
    );
  }
  // Node reads chunked framing itself, but leaves any other transfer coding (gzip, chunked) on the
  // bytes it hands over.
  const transfer = headers["transfer-encoding"];
  const codings = transfer?.split(",").map((coding) => coding.trim().toLowerCase()) ?? [];
  if (codings.some((coding) => coding !== "chunked" && coding !== "identity")) {
    return new HeraldError(
      "unsupported_media_type",
      `The request body is encoded (Transfer-Encoding: ${transfer}), and Herald reads bodies only as they are. Send it uncompressed, with Transfer-Encoding: chunked at most.`,
    );
  }
  return undefined;
}
