/**
 * Reads incoming webhook bodies for routing: JSON, form (`application/x-www-form-urlencoded`), XML
 * and plain text. The raw bytes are what is verified and kept; this only makes a readable copy.
 * XML is read with fast-xml-parser with entity expansion off, and a document with a DOCTYPE is
 * refused, so no entity a sender declares is ever expanded or left half-read.
 * Limits: form fields that repeat become arrays; XML attributes are kept under `@_name` keys.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { HeraldError } from "../domain/errors.js";
import { type BodyKind, parseIncomingJson } from "../domain/incoming.js";
import { readUtf8, type TextBodyWords } from "./utf8-text.js";

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Whether XML's Char production holds `code`: no NUL, no lone surrogate, nothing past U+10FFFF. */
function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

/**
 * Decodes XML's five predefined entities and character references; entities a DOCTYPE declares
 * are left as they are written, so nothing a sender defines is ever expanded. A reference to a
 * code XML has no character for makes the document malformed: it is refused, not kept as text.
 */
function decodeXmlText(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g, (whole, name: string) => {
    if (name[0] !== "#") return XML_ENTITIES[name] ?? whole;
    const code = name[1] === "x" ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
    if (!isXmlChar(code)) {
      throw new HeraldError(
        "bad_request",
        `The request body is not well-formed XML: ${whole} refers to no character XML allows. Send the text itself, or a reference to a real character.`,
      );
    }
    return String.fromCodePoint(code);
  });
}

const xml = new XMLParser({
  processEntities: false,
  ignoreAttributes: false,
  ignoreDeclaration: true,
  parseTagValue: false,
  tagValueProcessor: (_name, value) => decodeXmlText(value),
  attributeValueProcessor: (_name, value) => decodeXmlText(value),
});

/** Which kind of body a content type announces; undefined when Herald cannot read it. */
export function bodyKind(contentType: string | undefined): BodyKind | undefined {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "application/json" || /^application\/[\w.+-]+\+json$/.test(type)) return "json";
  if (type === "application/x-www-form-urlencoded") return "form";
  if (
    type === "application/xml" ||
    type === "text/xml" ||
    /^application\/[\w.+-]+\+xml$/.test(type)
  )
    return "xml";
  if (type === "text/plain") return "text";
  return undefined;
}

function parseForm(text: string): Record<string, string | string[]> {
  // URLSearchParams reads a broken %-escape as it is written, and escaped bytes that are not UTF-8
  // as replacement characters: either would store other text than the sender sent.
  if (text.includes("%")) {
    try {
      decodeURIComponent(text);
    } catch {
      throw new HeraldError(
        "bad_request",
        "The form body has a %-escape that is not % and two hex digits, or escaped bytes that are not UTF-8. Encode the fields as UTF-8 and escape every % as %25.",
      );
    }
  }
  // A Map, so that fields named like Object's own properties (constructor, toString, __proto__)
  // are fields like any other; fromEntries makes each an own property.
  const fields = new Map<string, string | string[]>();
  for (const [key, value] of new URLSearchParams(text)) {
    const existing = fields.get(key);
    if (existing === undefined) fields.set(key, value);
    else fields.set(key, Array.isArray(existing) ? [...existing, value] : [existing, value]);
  }
  return Object.fromEntries(fields);
}

/**
 * True when the document declares a DOCTYPE: one can stand only in the prolog, after the XML
 * declaration, processing instructions, comments and white space, and before the root element.
 */
function hasDoctype(text: string): boolean {
  let at = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (at < text.length && /\s/.test(text.charAt(at))) at++;
    const end = text.startsWith("<?", at)
      ? text.indexOf("?>", at + 2)
      : text.startsWith("<!--", at)
        ? text.indexOf("-->", at + 4)
        : -2;
    if (end === -2) return /^<!DOCTYPE/i.test(text.slice(at, at + 9));
    if (end < 0) return false;
    at = end + (text.charAt(end) === "?" ? 2 : 3);
  }
}

/**
 * Parses a body of `kind` declared as `contentType`, or throws: a 415 for a charset it cannot be
 * read in as UTF-8, a 400 that says what is wrong with it otherwise.
 */
export function parseBody(rawBody: Buffer, kind: BodyKind, contentType?: string): unknown {
  const words: TextBodyWords = {
    reads: "webhook bodies",
    declare: " (charset=utf-8 in Content-Type, or no charset)",
    content: "the body",
    code: kind === "json" ? "malformed_json" : "bad_request",
  };
  const text = readUtf8(rawBody, contentType, words);
  // NUL is no character of JSON or XML text, and UTF-16 or UTF-32 text sent as UTF-8 is full of
  // them: said plainly, rather than by a parser's message that would quote them.
  if ((kind === "json" || kind === "xml") && text.includes("\u0000")) {
    throw new HeraldError(
      words.code,
      `The request body holds NUL bytes, which ${kind === "json" ? "JSON" : "XML"} text never does (UTF-16 and UTF-32 text does). Send the body encoded as UTF-8.`,
    );
  }
  if (kind === "json") return parseIncomingJson(text);
  if (kind === "form") return parseForm(text);
  if (kind === "text") return text;
  // Entities a DOCTYPE declares are never expanded, so a document that relies on them would be
  // read other than its sender meant: none is read, whatever it declares.
  if (hasDoctype(text)) {
    throw new HeraldError(
      "bad_request",
      "The XML body has a DOCTYPE, which Herald does not read (its entities are never expanded). Send plain XML without a DOCTYPE.",
    );
  }
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new HeraldError(
      "bad_request",
      `The request body is not well-formed XML (line ${valid.err.line}: ${valid.err.msg}). Check the XML syntax.`,
    );
  }
  try {
    return xml.parse(text) as unknown;
  } catch (error) {
    if (error instanceof HeraldError) throw error;
    // The parser refuses some well-formed documents: names such as __proto__, nesting too deep
    // to be data.
    throw new HeraldError(
      "bad_request",
      `Herald cannot read this XML body (${(error as Error).message}). Send plain XML without special element names or extreme nesting.`,
    );
  }
}
