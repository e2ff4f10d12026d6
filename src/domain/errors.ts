/**
 * Every error Herald reports to an API client, in one catalogue.
 * `status` is the HTTP status, `error` the short error type of the API contract's error body.
 * Messages are written for a person reading them: what went wrong, then what to do next.
 */
export const ERROR_CATALOGUE = {
  validation_failed: { status: 400, error: "Validation Error" },
  unknown_event_type: { status: 400, error: "Validation Error" },
  malformed_json: { status: 400, error: "Bad Request" },
  bad_request: { status: 400, error: "Bad Request" },
  unauthorized: { status: 401, error: "Unauthorized" },
  signature_missing: { status: 401, error: "Unauthorized" },
  signature_invalid: { status: 401, error: "Unauthorized" },
  signature_expired: { status: 401, error: "Unauthorized" },
  incoming_secret_missing: { status: 401, error: "Unauthorized" },
  cors_origin_refused: { status: 403, error: "Forbidden" },
  not_found: { status: 404, error: "Not Found" },
  webhook_not_found: { status: 404, error: "Not Found" },
  delivery_not_found: { status: 404, error: "Not Found" },
  event_not_found: { status: 404, error: "Not Found" },
  unknown_service: { status: 404, error: "Not Found" },
  incoming_event_not_found: { status: 404, error: "Not Found" },
  source_not_found: { status: 404, error: "Not Found" },
  method_not_allowed: { status: 405, error: "Method Not Allowed" },
  conflict: { status: 409, error: "Conflict" },
  delivery_pending: { status: 409, error: "Conflict" },
  payload_too_large: { status: 413, error: "Payload Too Large" },
  unsupported_media_type: { status: 415, error: "Unsupported Media Type" },
  expectation_failed: { status: 417, error: "Expectation Failed" },
  uri_too_long: { status: 414, error: "URI Too Long" },
  request_timeout: { status: 408, error: "Request Timeout" },
  incomplete_body: { status: 408, error: "Request Timeout" },
  headers_too_large: { status: 431, error: "Request Header Fields Too Large" },
  rate_limited: { status: 429, error: "Too Many Requests" },
  internal: { status: 500, error: "Internal Server Error" },
  unavailable: { status: 503, error: "Service Unavailable" },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** An error meant for the API client: a stable code from the catalogue and a plain-words message. */
export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly error: string;
  /** The request field the error is about, when there is one. */
  readonly field: string | undefined;
  /** Seconds to wait before trying again (sent as Retry-After), when that helps. */
  retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, field?: string) {
    // A client's mistake needs no stack trace, and capturing one costs more than the rest of the answer.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = "HeraldError";
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.error = ERROR_CATALOGUE[code].error;
    this.field = field;
  }
}
