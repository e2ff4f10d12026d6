/**
 * Builds the Fastify app (it never listens by itself): the API under /api, health at /healthz and /readyz,
 * JSON Schema on every route, and one error format everywhere. Bodies are validated without type
 * coercion, so `"active": "false"` is an error rather than a guess; query strings are coerced.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { Ajv, type ValidateFunction } from "ajv";
import Fastify, {
  errorCodes,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Logger as PinoLogger } from "pino";
import type { Registry } from "prom-client";
import type { IncomingService } from "../../domain/incoming-service.js";
import type { SourceService } from "../../domain/source-service.js";
import { firstLine, storableText } from "../../domain/text.js";
import type { WebhookService } from "../../domain/webhook-service.js";
import { within } from "../time-limit.js";
import { encodedBodyRefusal } from "../utf8-text.js";
import { requireApiKey } from "./api-key.js";
import { useCors } from "./cors.js";
import {
  createErrorHandler,
  createOutageLog,
  errorBody,
  handleClientError,
  handleFrameworkError,
  notFoundHandler,
  sendError,
  sendUnavailable,
} from "./error-mapper.js";
import { refusedContentType, useJsonBodyParser } from "./json-body.js";
import { registerIncomingRoutes } from "./routes/incoming.js";
import { registerIncomingEventRoutes } from "./routes/incoming-events.js";
import { registerSourceRoutes } from "./routes/sources.js";
import { registerEventRoutes, registerWebhookRoutes } from "./routes/webhooks.js";

/** Where incoming webhooks arrive: their bodies are read raw, whatever they claim to be. */
const INCOMING_PREFIX = "/api/incoming-webhooks";
/** The routes behind the API key. */
const MANAGED_PREFIXES = [
  "/api/webhooks",
  "/api/events",
  "/api/sources",
  "/api/incoming-events",
] as const;

function underManagedPrefix(url: string): boolean {
  const path = url.split("?")[0] ?? "";
  return MANAGED_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
}

type Answer = (request: FastifyRequest, reply: FastifyReply) => unknown;

/**
 * Under the key's prefixes, what a path or method is not (a 404, a broken URL) is told only to a
 * caller with the key; without it, the answer is the 401, as for any route there.
 */
function keyFirst(checkKey: Answer | undefined, answer: Answer): Answer {
  if (checkKey === undefined) return answer;
  return async (request, reply) => {
    if (underManagedPrefix(request.url)) {
      await checkKey(request, reply);
      if (reply.sent) return reply;
    }
    return answer(request, reply);
  };
}

/** The API's use cases; absent in a worker-only process, which serves /healthz, /readyz and /metrics alone. */
export interface ApiDeps {
  webhooks: WebhookService;
  incoming: IncomingService;
  sources: SourceService;
  apiKey: string;
}

export interface ServerDeps {
  api: ApiDeps | undefined;
  metrics: Registry;
  bodyLimitBytes: number;
  /** Time a client has to send a whole request before it is answered 408. */
  requestTimeoutMs: number;
  /** Origins whose browser pages may call the API ("*": any); none when absent. */
  corsOrigins?: readonly string[];
  clock: { now(): number };
  logger: PinoLogger;
  /** Resolves once the database answers; /readyz asks it. */
  databaseAnswers?: () => Promise<void>;
}

/** Node hands a CONNECT request over as a tunnel, and without a listener closes it unanswered. */
function answerConnect(app: FastifyInstance): void {
  app.server.on("connect", (_req: IncomingMessage, socket: Duplex) => {
    // A client gone before the answer is written is nothing to report.
    socket.on("error", () => {});
    const text = JSON.stringify(
      errorBody(
        "bad_request",
        "Herald does not take CONNECT requests: it is not a proxy. Send GET, POST, PUT or DELETE to /api.",
      ),
    );
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
    );
  });
}

/**
 * A client that asks before it sends a body (`Expect: 100-continue`, which curl does for large
 * bodies) is told to go on only when the body is about to be read: after the route, the API key,
 * the source, the declared size and the content type have been checked. A request refused before
 * then is answered at once and its body never uploaded. (Node would send 100 Continue on arrival.)
 */
function answerExpectContinueLate(app: FastifyInstance, unrouted: Answer): void {
  const waiting = new WeakSet<IncomingMessage>();
  app.server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    waiting.add(req);
    app.server.emit("request", req, res);
  });
  // Node answers any other expectation 417 with an empty body; this one says what to change.
  app.server.on("checkExpectation", (req: IncomingMessage, res: ServerResponse) => {
    const body = errorBody(
      "expectation_failed",
      `Herald cannot meet 'Expect: ${String(req.headers.expect).slice(0, 100)}'. The only expectation it takes is 100-continue; send the request without the header.`,
    );
    const text = JSON.stringify(body);
    res
      .writeHead(417, {
        "content-type": "application/json; charset=utf-8",
        "content-length": Buffer.byteLength(text),
      })
      .end(text);
  });
  app.addHook("preParsing", (request, reply, payload, done) => {
    // No route takes it: answered now (404, or 401 without the key), since the body it waits to
    // send is never read.
    if (waiting.has(request.raw) && request.is404) {
      void unrouted(request, reply);
      return;
    }
    if (waiting.has(request.raw)) {
      const limit = request.routeOptions.bodyLimit;
      if (limit !== undefined && Number(request.headers["content-length"]) > limit) {
        done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
        return;
      }
      // Only where a JSON body will be read: not on incoming webhooks (their content type is
      // checked when they arrive), nor on GET, HEAD and TRACE, whose bodies Fastify never reads.
      const hasBody =
        !["GET", "HEAD", "TRACE"].includes(request.method) &&
        (request.headers["transfer-encoding"] !== undefined ||
          Number(request.headers["content-length"] ?? 0) > 0);
      const refused =
        hasBody && request.server.hasContentTypeParser("application/json")
          ? refusedContentType(request.headers["content-type"])
          : undefined;
      if (refused) {
        done(refused);
        return;
      }
      reply.raw.writeContinue();
    }
    done(null, payload);
  });
}

/**
 * Keeps the method and path pattern of every route `app` gets from now on, and returns a lookup of
 * the methods a concrete path takes: a request with the wrong method is told which to use. A path
 * that a route names word for word is that route's alone: the routes that would take it only as a
 * parameter (`POST /api/incoming-webhooks/:service` for `/api/incoming-webhooks/health`, a name no
 * source may have) do not count there.
 */
function routeMethods(app: FastifyInstance): {
  methodsFor: (path: string) => string[];
  /** The methods of the routes that name `path` word for word; empty when none does. */
  namingMethods: (path: string) => string[];
} {
  /** Methods by the path a route names word for word (without a trailing slash). */
  const named = new Map<string, string[]>();
  /** Routes with parameters, by the pattern of the paths they take. */
  const patterned: Array<{ method: string; pattern: RegExp }> = [];
  app.addHook("onRoute", (route) => {
    const path = route.url.replace(/\/$/, "");
    const parts = path.split("/");
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter(
      (method) => method !== "HEAD",
    );
    if (!parts.some((part) => part.startsWith(":"))) {
      named.set(path, [...new Set([...(named.get(path) ?? []), ...methods])]);
      return;
    }
    const source = parts
      .map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/");
    const pattern = new RegExp(`^${source}/?$`);
    for (const method of methods) patterned.push({ method, pattern });
  });
  const namingMethods = (path: string) => named.get(path.replace(/\/$/, "")) ?? [];
  return {
    methodsFor: (path) => {
      const naming = namingMethods(path);
      if (naming.length > 0) return naming;
      const matching = patterned.filter((route) => route.pattern.test(path));
      return [...new Set(matching.map((route) => route.method))];
    },
    namingMethods,
  };
}

/**
 * Checks a query string before its schema does. Ajv would read `1e2`, `0x10` or ` 1` as whole
 * numbers; a whole number in a URL is written in digits, so anything else is made to fail as not
 * one. A parameter given twice (`?limit=1&limit=2`) is refused as such, rather than as a value of
 * the wrong type.
 */
function queryChecks(validate: ValidateFunction) {
  const schema = validate.schema as { properties?: Record<string, { type?: unknown }> };
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) return validate;
  const integers = properties
    .filter(([, property]) => property.type === "integer")
    .map(([name]) => name);
  const single = properties
    .filter(([, property]) => property.type !== "array")
    .map(([name]) => name);
  const check = Object.assign(
    (data: Record<string, unknown>) => {
      const repeated = single.find((name) => Array.isArray(data?.[name]));
      if (repeated !== undefined) {
        check.errors = [
          {
            instancePath: `/${repeated}`,
            schemaPath: "#",
            keyword: "repeated",
            params: {},
            message: "is given more than once; give it once",
          },
        ];
        return false;
      }
      for (const name of integers) {
        const value = data?.[name];
        if (typeof value === "string" && !/^-?\d+$/.test(value)) data[name] = "not digits";
      }
      const valid = validate(data);
      check.errors = validate.errors;
      return valid;
    },
    { errors: null as ValidateFunction["errors"] },
  );
  return check;
}

/**
 * Decides whether the connection outlives an answer. Fastify closes it after any body it could not
 * parse; but a body read to its end leaves the connection clean, and closing it would leave the
 * requests a client pipelined behind it unanswered although Node goes on to run them. An error
 * answered before the body was read closes the connection (after a linger, see
 * lingerBeforeClosing): kept open, Node would read the rest of the body however long (gigabytes,
 * if the client says so), and a client that then stops sending would get a second answer, a 408,
 * to the same request.
 */
function keepOrCloseConnection(
  request: FastifyRequest,
  reply: FastifyReply,
  refusedForShutdown: boolean,
): void {
  const { headers } = request;
  // A request that declares no body has none left to read, whether or not it was read.
  const bodyless =
    (headers["content-length"] === undefined || headers["content-length"] === "0") &&
    headers["transfer-encoding"] === undefined;
  // A request refused because the server is shutting down is the connection's last.
  if (refusedForShutdown) {
    reply.header("connection", "close");
  } else if (request.raw.complete || bodyless) {
    if (reply.getHeader("connection") === "close") reply.removeHeader("connection");
  } else if (reply.statusCode >= 400) {
    reply.header("connection", "close");
    lingerBeforeClosing(request);
  }
}

/** How long a connection answered before its body was read goes on reading it, at most. */
const LINGER_MS = 5_000;
/** Bodies declared larger than this are not waited for: the connection closes at once. */
const LINGER_BYTES = 64 * 1024 * 1024;

/**
 * A connection answered (and to be closed) before its request's body was read goes on reading and
 * dropping that body for a while, after the answer and a FIN, before it closes. Closed with the
 * body still arriving, it would be reset, and a client still sending (fetch sends the body after
 * the headers) would get a broken pipe instead of the answer. A client that declared more than
 * LINGER_BYTES, or sends for longer than LINGER_MS, is cut off as before.
 */
function lingerBeforeClosing(request: FastifyRequest): void {
  const socket = request.raw.socket as
    | (typeof request.raw.socket & { destroySoon?: () => void })
    | null;
  if (!socket || Number(request.headers["content-length"] ?? 0) > LINGER_BYTES) return;
  // A client waiting for 100 Continue sends no body: there is nothing to wait for.
  if (request.headers.expect !== undefined) return;
  // Node calls destroySoon once the answer is written (the request's body is then being dropped).
  socket.destroySoon = () => {
    socket.end();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
  };
}

/** Replaces NUL in the string values of a parsed path or query, in place. */
function replaceNul(values: unknown): void {
  if (values === null || typeof values !== "object") return;
  const record = values as Record<string, unknown>;
  for (const [key, value] of Object.entries(record)) {
    if (typeof value === "string") {
      if (value.includes("\u0000")) record[key] = storableText(value);
    } else if (Array.isArray(value)) {
      record[key] = value.map((item) => (typeof item === "string" ? storableText(item) : item));
    }
  }
}

/**
 * How long a readiness check waits for the database: a probe (or an operator) with a short timeout
 * must get an answer, not silence, from a database that stalls.
 */
const READY_WAIT_MS = 2_000;

/** At shutdown, the server closes once no request has come for this long... */
const SHUTDOWN_QUIET_MS = 100;
/** ...or after this long, however busy its clients. */
const SHUTDOWN_DRAIN_MAX_MS = 1_000;

/** How long a request refused at shutdown may take to finish sending its body. */
const REFUSED_BODY_WAIT_MS = 1_000;

/**
 * Calls `answer` once the request's body has been read and dropped (at most `limit` bytes, for at
 * most a second), or at once when there is none to wait for. The connection closes after the
 * answer: closed with a body still unread, it is reset, and a client that was still sending (undici
 * sends a body after the headers) gets a network error instead of the answer, and cannot tell
 * whether its request was stored.
 */
function afterBody(request: FastifyRequest, limit: number, answer: () => void): void {
  const raw = request.raw;
  const { headers } = request;
  const hasBody =
    (headers["content-length"] !== undefined && headers["content-length"] !== "0") ||
    headers["transfer-encoding"] !== undefined;
  // A client that waits for 100 Continue sends nothing until told to.
  if (raw.complete || !hasBody || headers.expect !== undefined) {
    answer();
    return;
  }
  let answered = false;
  let read = 0;
  const once = () => {
    if (answered) return;
    answered = true;
    clearTimeout(wait);
    answer();
  };
  const wait = setTimeout(once, REFUSED_BODY_WAIT_MS);
  raw.on("data", (chunk: Buffer) => {
    read += chunk.length;
    if (read > limit) once();
  });
  raw.on("end", once);
  raw.on("error", once);
}

/** Creates the HTTP app. Call `listen` or `inject` on the result. */
export function buildServer(deps: ServerDeps): FastifyInstance {
  // The API key check, made once the app (and its logger) exists; URLs the router cannot read
  // meet it too.
  let checkKey: Answer | undefined;
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Requests are not logged one by one, so each needs no child logger of its own; the few
    // error lines name the request themselves.
    childLoggerFactory: (logger) => logger,
    bodyLimit: deps.bodyLimitBytes,
    // Requests that come while the server closes are refused below, in Herald's error format.
    return503OnClosing: false,
    forceCloseConnections: "idle",
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    frameworkErrors: (error, request, reply) =>
      keyFirst(checkKey, (req, rep) => handleFrameworkError(error, req, rep))(request, reply),
    clientErrorHandler: handleClientError,
    // A client that stops sending halfway through its request is answered 408 and let go, instead
    // of holding its connection for ever.
    requestTimeout: deps.requestTimeoutMs,
    http: {
      // Node would refuse a request without Host with an empty 400; Herald answers it in the error
      // format instead (see below).
      requireHostHeader: false,
      // Node finds a stalled request only when it checks: every 5 s, so the 408 comes on time.
      connectionsCheckingInterval: Math.min(5_000, Math.ceil(deps.requestTimeoutMs / 2)),
      // Node checks the request timeout only when the headers' timeout is not longer.
      headersTimeout: Math.min(60_000, deps.requestTimeoutMs),
      requestTimeout: deps.requestTimeoutMs,
    },
  });
  // First of the hooks: every answer after it, errors included, is readable by an allowed page.
  // A worker serves no pages: a preflight there is a path it does not have, as any other.
  if (deps.api) useCors(app, deps.corsOrigins ?? []);
  // An id or query value holding NUL names nothing Herald stores, and PostgreSQL cannot even
  // compare it: read with U+FFFD in its place, it finds nothing on every store alike (a 404).
  app.addHook("preValidation", (request, _reply, done) => {
    // A request line cannot carry NUL but as %00: most requests are passed by at once.
    if (request.url.includes("%00")) {
      replaceNul(request.params);
      replaceNul(request.query);
    }
    done();
  });
  let closing = false;
  let lastRefusal = 0;
  app.addHook("preClose", (done) => {
    closing = true;
    // Closing a keep-alive connection just as its client sends on it fails that request with no
    // answer at all. So the server stays open while clients keep sending: each is answered 503
    // with Connection: close and goes; once none has come for a moment, the rest are idle.
    const began = Date.now();
    lastRefusal = began;
    const quiet = () => {
      const now = Date.now();
      if (now - lastRefusal >= SHUTDOWN_QUIET_MS || now - began >= SHUTDOWN_DRAIN_MAX_MS) done();
      else setTimeout(quiet, SHUTDOWN_QUIET_MS / 2);
    };
    setTimeout(quiet, SHUTDOWN_QUIET_MS);
  });
  app.addHook("onRequest", (request, reply, done) => {
    if (closing) {
      lastRefusal = Date.now();
      afterBody(request, deps.bodyLimitBytes, () =>
        reply
          .status(503)
          .header("retry-after", "5")
          .send(
            errorBody(
              "unavailable",
              "Herald is shutting down, so this request was not processed and nothing was stored. Send it again in a few seconds: another Herald process, or this one once it has restarted, will take it.",
            ),
          ),
      );
      return;
    }
    if (request.headers.host === undefined && request.raw.httpVersion === "1.1") {
      reply
        .status(400)
        .send(
          errorBody(
            "bad_request",
            "The request has no Host header, which HTTP/1.1 requires. Check the client that sent it.",
          ),
        );
      return;
    }
    // An incoming webhook's type and encoding are checked once its source is known (see
    // routes/incoming.ts).
    if (request.url.startsWith(INCOMING_PREFIX)) {
      done();
      return;
    }
    // A request without a body has no media type or encoding to refuse (axios sends a type on a
    // bare POST, and some clients name an encoding on every request).
    if (
      (request.headers["content-length"] ?? "0") === "0" &&
      request.headers["transfer-encoding"] === undefined
    ) {
      delete request.headers["content-type"];
      done();
      return;
    }
    const encoded = encodedBodyRefusal(request.headers);
    if (encoded) {
      sendError(reply, encoded);
      return;
    }
    done();
  });
  app.addHook("onSend", (request, reply, payload, done) => {
    keepOrCloseConnection(request, reply, closing && reply.statusCode === 503);
    done(null, payload);
  });
  const { methodsFor, namingMethods } = routeMethods(app);
  // One check, so that its log lines are held back across every route it guards.
  checkKey = deps.api ? requireApiKey(deps.api.apiKey, app.log, () => deps.clock.now()) : undefined;
  const unrouted = keyFirst(checkKey, notFoundHandler(methodsFor));
  answerExpectContinueLate(app, unrouted);
  // Node keeps the first 2,000 header lines and drops the rest without a word, a delivery id among
  // them; the 16 KB limit on headers (431 past it) is bound enough.
  app.server.maxHeadersCount = 0;
  answerConnect(app);

  const common = {
    useDefaults: true,
    removeAdditional: false,
    allowUnionTypes: true,
    strictTypes: false,
  } as const;
  const bodyAjv = new Ajv({ ...common, coerceTypes: false });
  const queryAjv = new Ajv({ ...common, coerceTypes: "array" });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === "body" ? bodyAjv.compile(schema) : queryChecks(queryAjv.compile(schema)),
  );

  // JSON only: a text/plain body is refused with 415 rather than read as a string.
  app.removeContentTypeParser("text/plain");
  useJsonBodyParser(app);
  const outages = createOutageLog();
  app.setErrorHandler(createErrorHandler(outages));
  app.addHook("onResponse", (request, reply, done) => {
    if (reply.statusCode < 300 && !["GET", "HEAD", "OPTIONS"].includes(request.method)) {
      outages.stored(request);
    }
    done();
  });
  app.setNotFoundHandler(unrouted);
  // A path that a route names word for word is that route's alone: asked with another method, it
  // is not taken as a parameter by a route with a pattern (GET /api/webhooks/trigger is no lookup
  // of a webhook named 'trigger'), but told which methods it takes.
  app.addHook("onRequest", (request, reply, done) => {
    if (request.is404 || !request.routeOptions.url?.includes(":")) return done();
    const naming = namingMethods(request.url.split("?")[0] ?? "");
    const method = request.method === "HEAD" ? "GET" : request.method;
    if (naming.length > 0 && !naming.includes(method)) return reply.callNotFound();
    done();
  });

  app.get("/healthz", async () => ({ success: true, message: "Herald is running" }));
  // Readiness, beside liveness: a load balancer sends no work to a process whose database does
  // not answer, and restarts none for it (the process itself is fine, and serves once it is back).
  const databaseReady = async () => {
    if (deps.databaseAnswers) await within(deps.databaseAnswers(), READY_WAIT_MS);
  };
  app.get("/readyz", async (_request, reply) => {
    try {
      await databaseReady();
      return { success: true, message: "Herald is ready: its database answers" };
    } catch (error) {
      return sendUnavailable(
        reply,
        `Herald is running, but its database does not answer (${firstLine((error as Error).message)}), so this process cannot take work now. Check that the database is running and reachable; requests are served again as soon as it answers.`,
      );
    }
  });
  app.get("/metrics", async (_request, reply) =>
    reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()),
  );

  const { api } = deps;
  if (!api) {
    // A worker has no API: any other path is answered 404 before its body is read, so a bad or
    // oversize body sent to it is not reported as a 400 or a 413.
    app.addHook("onRequest", (request, reply, done) => {
      const path = request.url.split("?")[0];
      if (path === "/healthz" || path === "/readyz" || path === "/metrics") return done();
      reply
        .status(404)
        .send(
          errorBody(
            "not_found",
            `Route not found: ${request.method} ${path}. This process is a delivery worker (HERALD_ROLE=worker): it serves only /healthz, /readyz and /metrics. Send API requests to an api or all process.`,
          ),
        );
    });
    return app;
  }

  const managed: Record<(typeof MANAGED_PREFIXES)[number], (scope: FastifyInstance) => void> = {
    "/api/webhooks": (scope) => registerWebhookRoutes(scope, api.webhooks),
    "/api/events": (scope) => registerEventRoutes(scope, api.webhooks),
    "/api/sources": (scope) => registerSourceRoutes(scope, api.sources),
    "/api/incoming-events": (scope) => registerIncomingEventRoutes(scope, api.incoming),
  };
  for (const prefix of MANAGED_PREFIXES) {
    const register = managed[prefix];
    app.register(
      async (scope) => {
        if (checkKey) scope.addHook("onRequest", checkKey);
        register(scope);
      },
      { prefix },
    );
  }

  app.register(
    async (incoming) => {
      registerIncomingRoutes(incoming, api.incoming, deps.clock, databaseReady);
    },
    { prefix: INCOMING_PREFIX },
  );

  return app;
}
