/**
 * The single place where failures become HTTP answers in the API contract's error format
 * `{"success":false,"error","message"}` (plus `code`, and `field` when one field is at fault).
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { ERROR_CATALOGUE, type ErrorCode, HeraldError } from "../../domain/errors.js";
import { createLogThrottle } from "../../domain/log-throttle.js";
import { type OutageKind, outageKindAdvice, storageOutage } from "../storage/outage.js";
import { isUnstorableText } from "../storage/refused-text.js";

/** The body of every error answer. */
export interface ErrorBody {
  success: false;
  error: string;
  message: string;
  code: ErrorCode;
  field?: string;
}

/** Builds an error body from a catalogue code. */
export function errorBody(code: ErrorCode, message: string, field?: string): ErrorBody {
  const body: ErrorBody = { success: false, error: ERROR_CATALOGUE[code].error, message, code };
  if (field !== undefined) body.field = field;
  return body;
}

/** Sends a HeraldError. */
export function sendError(reply: FastifyReply, error: HeraldError): FastifyReply {
  if (error.retryAfterSeconds !== undefined)
    reply.header("retry-after", String(error.retryAfterSeconds));
  return reply.status(error.status).send(errorBody(error.code, error.message, error.field));
}

/** What a write refused in a database outage is told, by kind of outage. */
const WRITE_REFUSED: Record<OutageKind, string> = {
  full: "Herald's database has no room left (its disk is full), so nothing was stored. Send the request again in a few seconds; if this keeps happening, the operator must free disk space where the database lives.",
  no_answer:
    "Herald's database did not answer (in time, or before the connection to it broke), so the request may have been stored or not. Send it again in a few seconds (an event sent twice may be delivered twice); if this keeps happening, check that the database is running and reachable.",
  unavailable:
    "Herald cannot use its database right now (it may be down, restarting or out of connections), so nothing was stored. Send the request again in a few seconds; if this keeps happening, tell Herald's operator: Herald's log says what is wrong.",
};

const READ_AGAIN =
  "its database right now, so it cannot read what was asked. Send the request again in a few seconds; if this keeps happening, tell Herald's operator: Herald's log says what is wrong.";

/** What a read refused in a database outage is told: it stores nothing either way. */
const READ_REFUSED: Record<OutageKind, string> = {
  full: `Herald cannot use ${READ_AGAIN}`,
  no_answer: `Herald did not get an answer from ${READ_AGAIN}`,
  unavailable: `Herald cannot use ${READ_AGAIN}`,
};

/** A 503 asking the client to come back in 5 s: the database does not answer. */
export function sendUnavailable(reply: FastifyReply, message: string): FastifyReply {
  const error = new HeraldError("unavailable", message);
  error.retryAfterSeconds = 5;
  return sendError(reply, error);
}

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Turns the first schema violation into a sentence that names the field. */
function describeValidation(
  errors: AjvError[],
  part: string,
): { field: string | undefined; message: string } {
  const first = errors[0];
  if (!first) return { field: undefined, message: `The request ${part} is not valid.` };
  const path = pathOf(first);
  // A routing condition may take one of several forms: say which, not why the first did not fit.
  const alternatives = errors.find((error) => error.keyword === "anyOf");
  if (alternatives && /(^|\.)where\.[^.]+$/.test(pathOf(alternatives))) {
    const field = pathOf(alternatives);
    return {
      field,
      message: `${field} must be a value to equal (a string, number, true, false or null), {"in": [up to 100 such values]} or {"exists": true} (or false).`,
    };
  }
  if (first.keyword === "additionalProperties") {
    const name = String(first.params.additionalProperty);
    const field = path ? `${path}.${name}` : name;
    const where = path ? path : part === "body" ? "The request body" : `The ${part}`;
    return {
      field,
      message: `${where} has a field '${name}' that Herald does not take. Check its spelling, or remove it.`,
    };
  }
  if (first.keyword === "required") {
    const missing = String(first.params.missingProperty);
    const field = path ? `${path}.${missing}` : missing;
    return { field, message: `${field} is required.` };
  }
  if (first.keyword === "minProperties") {
    return {
      field: undefined,
      message: "The request body has no field to change: send at least one field to change.",
    };
  }
  if (!path) {
    const where = part === "body" ? "The request body" : `The ${part}`;
    return { field: undefined, message: `${where} must be a JSON object.` };
  }
  switch (first.keyword) {
    case "type":
      return {
        field: path,
        message: `${path} must be ${String(first.params.type).split(",").map(articled).join(" or ")}.`,
      };
    case "minLength":
      return { field: path, message: `${path} must not be empty.` };
    case "maxLength":
      return {
        field: path,
        message: `${path} must be at most ${first.params.limit} characters long.`,
      };
    case "minItems":
      return { field: path, message: `${path} must list at least ${first.params.limit} item.` };
    case "maxItems":
      return { field: path, message: `${path} must list at most ${first.params.limit} items.` };
    case "enum": {
      const allowed = (first.params.allowedValues as unknown[] | undefined) ?? [];
      return {
        field: path,
        message: `${path} must be one of ${allowed.map((value) => `'${String(value)}'`).join(", ")}.`,
      };
    }
    case "minimum":
    case "maximum": {
      const bound = first.keyword === "minimum" ? "at least" : "at most";
      return { field: path, message: `${path} must be ${bound} ${first.params.limit}.` };
    }
    default:
      return { field: path, message: `${path} ${first.message ?? "is not valid"}.` };
  }
}

function pathOf(error: AjvError): string {
  return error.instancePath.replace(/^\//, "").replace(/\//g, ".");
}

function articled(type: string): string {
  if (type === "null") return "null";
  if (type === "array") return "an array";
  if (type === "object") return "an object";
  if (type === "integer") return "a whole number";
  return `a ${type}`;
}

/** An outage answers every request 503 at once: one log line per 10 s says so, with a count. */
const OUTAGE_LOG_INTERVAL_MS = 10_000;

/** What a server logs of a database outage: its error lines, and the line that says it ended. */
export interface OutageLog {
  /** A request was answered 503 for `outage`. */
  refused(request: FastifyRequest, error: unknown, outage: OutageKind): void;
  /** A write was stored (a 2xx to a request that writes). */
  stored(request: FastifyRequest): void;
}

/**
 * The outage log of one server. After an outage, one line says the database serves again, so the
 * operator who read the error lines sees it end. A database that comes and goes gets one such line
 * for each error line, and its error lines keep to the throttle; the next outage after a steady
 * spell is told at its first failure.
 */
export function createOutageLog(now: () => number = Date.now): OutageLog {
  const throttle = createLogThrottle(OUTAGE_LOG_INTERVAL_MS, now);
  /** Requests answered 503 since the last "serves again" line. */
  let answeredUnavailable = 0;
  /** An error line was logged that no "serves again" line has answered yet. */
  let outageLogged = false;
  let servedAgainAt = Number.NEGATIVE_INFINITY;
  return {
    refused(request, error, outage) {
      answeredUnavailable++;
      const count = throttle.due(outage);
      if (count === undefined) return;
      outageLogged = true;
      const what = outageKindAdvice(outage, error);
      const stored = outage === "no_answer" ? "perhaps not stored" : "nothing stored";
      request.log.error(
        { err: error, method: request.method, url: request.url, requestsAnswered503: count },
        `${what} ${count === 1 ? "A request was" : `${count} requests were`} answered 503 (${stored}; clients are asked to send again); while this lasts, this line repeats at most every ${OUTAGE_LOG_INTERVAL_MS / 1000} s.`,
      );
    },
    stored(request) {
      if (!outageLogged) return;
      const count = answeredUnavailable;
      answeredUnavailable = 0;
      outageLogged = false;
      const at = now();
      if (at - servedAgainAt >= OUTAGE_LOG_INTERVAL_MS) {
        throttle.forget("full");
        throttle.forget("no_answer");
        throttle.forget("unavailable");
      }
      servedAgainAt = at;
      request.log.info(
        { requestsAnswered503: count },
        `The database serves again: requests are stored as usual. While it could not, ${count === 1 ? "1 request was" : `${count} requests were`} answered 503.`,
      );
    },
  };
}

/**
 * Fastify's error handler: every error, expected or not, answers in the contract's format;
 * database outages are logged to `outages`.
 */
export function createErrorHandler(outages: OutageLog) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) =>
    handleError(error, request, reply, outages);
}

function handleError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
  /** Where database outages are logged; framework errors (a bad URL) meet no database. */
  outages?: OutageLog,
) {
  if (error instanceof HeraldError) return sendError(reply, error);
  if (error.validation) {
    const { field, message } = describeValidation(
      error.validation as unknown as AjvError[],
      error.validationContext ?? "body",
    );
    return reply.status(400).send(errorBody("validation_failed", message, field));
  }
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return reply
        .status(415)
        .send(
          errorBody(
            "unsupported_media_type",
            `Content-Type '${request.headers["content-type"] ?? "(none)"}' is not supported. Send the body as JSON with the header Content-Type: application/json.`,
          ),
        );
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return reply
        .status(413)
        .send(
          errorBody(
            "payload_too_large",
            `The request body is larger than the ${Math.round(Number(request.routeOptions.bodyLimit ?? 0) / 1024)} KB limit. Send a smaller body.`,
          ),
        );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return reply
        .status(400)
        .send(errorBody("malformed_json", "The request body is empty. Send a JSON object."));
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return reply
        .status(400)
        .send(
          errorBody(
            "bad_request",
            "The Content-Length header does not match the body that was sent.",
          ),
        );
  }
  if (error instanceof SyntaxError || error.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
    return reply
      .status(400)
      .send(
        errorBody(
          "malformed_json",
          `The request body is not valid JSON (${error.message}). Check the JSON syntax.`,
        ),
      );
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    // The client left (or ran out of time, and Node closed the connection) before its body had
    // come: the answer reaches nobody, but what is logged of it says what happened.
    if (request.raw.aborted || request.raw.socket?.destroyed === true) {
      return sendError(
        reply,
        new HeraldError(
          "incomplete_body",
          "The sender did not send its whole body: it disconnected, or took longer than HERALD_REQUEST_TIMEOUT. Nothing was stored; a sender that retries will send it again.",
        ),
      );
    }
    return reply.status(status).send(errorBody("bad_request", error.message));
  }
  if (isUnstorableText(error)) {
    return reply
      .status(400)
      .send(
        errorBody(
          "bad_request",
          "A text value in the request (a name, id, event name or query value) contains the NUL character (\\u0000), which the database cannot store. Remove it and send the request again.",
        ),
      );
  }
  if (error instanceof RangeError && /call stack/i.test(error.message)) {
    return reply
      .status(400)
      .send(
        errorBody(
          "bad_request",
          "The request body is nested too deeply to be processed. Send data with fewer levels of nesting.",
        ),
      );
  }
  const outage = storageOutage(error);
  if (outage !== undefined) {
    outages?.refused(request, error, outage);
    // A read stores nothing either way: it is told only to ask again.
    const reading = request.method === "GET" || request.method === "HEAD";
    return sendUnavailable(reply, reading ? READ_REFUSED[outage] : WRITE_REFUSED[outage]);
  }
  request.log.error(
    // A fault in Herald: the stack is what a report of it needs.
    { err: error, stack: (error as Error).stack, method: request.method, url: request.url },
    "Request failed with an unexpected error; it was not the client's fault.",
  );
  return reply
    .status(500)
    .send(
      errorBody(
        "internal",
        "Herald hit an unexpected error and could not complete the request. Try again; if it keeps happening, check the Herald log for the details.",
      ),
    );
}

/**
 * Answers a request no route takes with 404. `methodsFor` names the methods the path does take, if
 * any, so the message (and an `Allow` header, for clients that read one) can say which to use.
 */
export function notFoundHandler(methodsFor: (path: string) => string[]) {
  return (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split("?")[0] ?? "";
    const methods = methodsFor(path);
    const hint =
      methods.length > 0
        ? `This path takes ${methods.join(" or ")}, not ${request.method}.`
        : path === "/api" || path.startsWith("/api/")
          ? "Herald has no such route: check the path against the API routes in the README (/api/webhooks, /api/sources, /api/incoming-events, /api/incoming-webhooks/<source>)."
          : "The API lives under /api; see the README for its routes.";
    // A path read with GET can be read with HEAD too (Fastify answers it from the GET route).
    const allowed = methods.includes("GET") ? [...methods, "HEAD"] : methods;
    if (allowed.length > 0) reply.header("allow", allowed.join(", "));
    return reply
      .status(404)
      .send(errorBody("not_found", `Route not found: ${request.method} ${path}. ${hint}`));
  };
}

/**
 * Fastify's handler for URLs its router cannot read: a broken percent-encoding, or a path
 * parameter longer than any id or source name.
 */
export function handleFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const path = request.url.split("?")[0];
  if (error.code !== "FST_ERR_BAD_URL" && error.code !== "FST_ERR_MAX_PARAM_LENGTH") {
    return handleError(error, request, reply);
  }
  if (error.code === "FST_ERR_MAX_PARAM_LENGTH") {
    return reply
      .status(414)
      .send(
        errorBody(
          "uri_too_long",
          `A part of the path ${shorten(path)} is too long to be an id or a name. Check the URL.`,
        ),
      );
  }
  return reply
    .status(400)
    .send(
      errorBody(
        "bad_request",
        `The path ${shorten(path)} is not a valid URL: each % must start an escape of two hexadecimal digits, and the escapes must spell UTF-8 text. Encode special characters in ids and names as UTF-8, for example with encodeURIComponent.`,
      ),
    );
}

function shorten(path: string | undefined): string {
  const text = path ?? "";
  return text.length > 80 ? `'${text.slice(0, 80)}…'` : `'${text}'`;
}

/**
 * The HTTP server's handler for requests too broken to reach Fastify (headers too large, a body
 * that does not match its Content-Length, a client too slow to send its request): the answer is
 * written on the socket directly, still in the contract's error format, and the connection closed.
 */
export function handleClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  let body: ErrorBody;
  if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    body = errorBody(
      "request_timeout",
      "The request was not sent completely in time, so Herald closed the connection. Send it again.",
    );
  } else if (error.code === "HPE_HEADER_OVERFLOW") {
    body = errorBody(
      "headers_too_large",
      "The request's headers (with the URL and query string) are larger than 16 KB. Send shorter headers or a shorter query string.",
    );
  } else {
    body = errorBody(
      "bad_request",
      "The request is not valid HTTP (for example, its Content-Length does not match the body sent). Check the client that sent it.",
    );
  }
  const status = ERROR_CATALOGUE[body.code].status;
  const text = JSON.stringify(body);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy(error);
}
