/**
 * The composition root: builds every adapter from a validated config, wires them to the domain,
 * starts them in order and stops them in reverse.
 */
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger as PinoLogger } from "pino";
import { bodyKind, parseBody } from "./adapters/body-parser.js";
import { buildServer } from "./adapters/http/server.js";
import { createLogger } from "./adapters/logging.js";
import { createMetrics } from "./adapters/metrics.js";
import { createHttpSender } from "./adapters/sender.js";
import { storeFailureAdvice } from "./adapters/storage/outage.js";
import { postgresTarget } from "./adapters/storage/postgres/connection-errors.js";
import { openPostgresStore } from "./adapters/storage/postgres/postgres-store.js";
import { createPostgresWakeSignal } from "./adapters/storage/postgres/postgres-wake-signal.js";
import { openSqliteStore } from "./adapters/storage/sqlite/sqlite-store.js";
import { createThreadedSender } from "./adapters/threaded-sender.js";
import { within } from "./adapters/time-limit.js";
import { createFirstPresentVerifier } from "./adapters/verifiers/first-present.js";
import { createVerifier } from "./adapters/verifiers/index.js";
import {
  createStripeVerifier,
  keyedByStripeEventId,
  STRIPE_SIGNATURE_HEADER,
} from "./adapters/verifiers/stripe.js";
import { createXanoVerifier, XANO_SIGNATURE_HEADER } from "./adapters/verifiers/xano.js";
import { type Config, INCOMING_SERVICES, type IncomingServiceName } from "./config.js";
import { type Clock, systemClock } from "./domain/clock.js";
import { createIncomingService } from "./domain/incoming-service.js";
import type { Sender, Store, WakeSignal } from "./domain/ports.js";
import { RateLimiter } from "./domain/rate-limit.js";
import { type BuiltInSources, createSourceRegistry } from "./domain/source-registry.js";
import { createSourceService } from "./domain/source-service.js";
import { isHeaderToken, listed } from "./domain/text.js";
import { createWebhookService } from "./domain/webhook-service.js";
import { createDeliveryWorker } from "./worker/delivery-worker.js";
import { createLocalWakeSignal } from "./worker/wake-signal.js";

const packageJson = createRequire(import.meta.url)("../package.json") as { version: string };

/** Herald's version, as sent in the User-Agent of every delivery. */
export const VERSION = packageJson.version;

/** Parts a test may replace; everything else is built from the config. */
export interface HeraldOverrides {
  clock?: Clock;
  logger?: PinoLogger;
  store?: Store;
  sender?: Sender;
  random?: () => number;
  /** The delivery worker's payload budget, in body characters (tests use a small one). */
  deliveryHoldBodyLength?: number;
}

/** A wired Herald, not yet listening. */
export interface Herald {
  app: FastifyInstance;
  store: Store;
  apiKey: string;
  logger: PinoLogger;
  /** Listens on the configured port and starts delivering. Resolves with the base URL. */
  start(): Promise<string>;
  /** Stops accepting, lets attempts in flight finish (bounded), and closes the database. */
  stop(): Promise<void>;
}

/** Returns the configured key, or the one kept in the data directory, generating it on first start. */
function resolveApiKey(config: Config, logger: PinoLogger): string {
  if (config.apiKey) {
    if (config.apiKey.length < 16) {
      logger.warn(
        {},
        "HERALD_API_KEY is shorter than 16 characters, which is easy to guess. Use 32 random characters or more, for example from: openssl rand -hex 24",
      );
    }
    const saved = join(config.dataDir, "api-key");
    // A client still holding the saved key would be refused without a word otherwise.
    if (existsSync(saved)) {
      logger.info(
        { path: saved },
        `Using HERALD_API_KEY; the key saved earlier in ${saved} is not accepted while it is set.`,
      );
    }
    return config.apiKey;
  }
  const path = join(config.dataDir, "api-key");
  if (existsSync(path)) {
    const saved = readFileSync(path, "utf8").trim();
    if (saved.length > 0 && !isHeaderToken(saved)) {
      throw Object.assign(
        new Error(
          `The API key saved in ${path} holds characters an HTTP header cannot carry as given (only printable ASCII without spaces can be sent), so no client could use it. Delete the file to have a new key generated, or set HERALD_API_KEY.`,
        ),
        { code: "HERALD_API_KEY_FILE" },
      );
    }
    if (saved.length > 0) {
      if ((statSync(path).mode & 0o077) !== 0) {
        logger.warn(
          { path },
          `The API key file ${path} can be read by other users of this machine. Make it readable only by you: chmod 600 ${path}`,
        );
      }
      logger.info(
        { path },
        `Using the API key saved in ${path}. Set HERALD_API_KEY to choose your own.`,
      );
      return saved;
    }
  }
  mkdirSync(config.dataDir, { recursive: true });
  const key = `hk_${randomBytes(24).toString("base64url")}`;
  // Written to a new file only this user can read, then renamed over the key file: a file left
  // empty by an earlier run keeps its mode, and whoever had it open would read the key.
  const fresh = `${path}.${process.pid}.new`;
  rmSync(fresh, { force: true });
  writeFileSync(fresh, `${key}\n`, { mode: 0o600, flag: "wx" });
  renameSync(fresh, path);
  // No quotes around the header: in a JSON log line they would be escaped, and copied with it.
  const message = `No HERALD_API_KEY was set, so Herald generated one and saved it in ${path} (readable only by this user). Send it on every /api request (all but /api/incoming-webhooks) as the header Authorization: Bearer ${key} (this is the only time it is printed).`;
  // Printed whatever LOG_LEVEL says: an operator who never sees it could not use the API.
  if (logger.isLevelEnabled("warn")) logger.warn({ path }, message);
  else process.stderr.write(`${message}\n`);
  return key;
}

/** The built-in sources of the API contract: secrets from the environment, fixed verifiers. */
function builtInSources(config: Config): BuiltInSources {
  return {
    spec: (name) => (name === "stripe" ? { type: "stripe" } : { type: "xano" }),
    secret: (name) => config.incomingSecrets[name as IncomingServiceName],
    verifier(name, secret) {
      const contract = createXanoVerifier({ type: "xano" }, secret);
      if (name !== "stripe") return contract;
      // Stripe's own scheme, or the contract's X-Webhook-Signature. Either way a Stripe event is
      // known by its id, not by a header the signature does not cover: a copy sent again under a
      // new X-Webhook-Delivery is still the same event.
      return createFirstPresentVerifier([
        [STRIPE_SIGNATURE_HEADER, createStripeVerifier(secret)],
        [XANO_SIGNATURE_HEADER, keyedByStripeEventId(contract)],
      ]);
    },
  };
}

async function openStore(
  config: Config,
  logger: PinoLogger,
): Promise<{ store: Store; wake: WakeSignal; closeWake(): Promise<void> }> {
  if (config.database.kind === "sqlite") {
    return {
      store: openSqliteStore(config.database.path, { logger }),
      wake: createLocalWakeSignal(),
      closeWake: async () => {},
    };
  }
  const { url, poolSize } = config.database;
  // An api process leases new deliveries to workers that tell their room, so they need no claim.
  const store = await openPostgresStore({
    url,
    poolSize,
    logger,
    handOverToWorkers: config.role === "api",
  });
  if (config.role === "api") {
    // The API never delivers; the store's NOTIFY wakes the workers.
    return { store, wake: createLocalWakeSignal(), closeWake: async () => {} };
  }
  try {
    const wake = await createPostgresWakeSignal({ url, logger });
    return { store, wake, closeWake: () => wake.close() };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** Builds Herald from `config`: opens the database (running migrations) and wires every part. */
export async function createHerald(
  config: Config,
  overrides: HeraldOverrides = {},
): Promise<Herald> {
  const clock = overrides.clock ?? systemClock;
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const servesApi = config.role !== "worker";
  const delivers = config.role !== "api";
  const apiKey = servesApi ? resolveApiKey(config, logger) : "";
  const opened = overrides.store
    ? { store: overrides.store, wake: createLocalWakeSignal(), closeWake: async () => {} }
    : await openStore(config, logger);
  const { store, wake } = opened;
  const metrics = createMetrics();
  const senderOptions = {
    timeoutMs: config.deliveryTimeoutMs,
    allowPrivateTargets: config.allowPrivateTargets,
    userAgent: `Herald/${VERSION}`,
  };
  // Delivery threads read the system clock, so an injected clock keeps sending on this thread.
  const sender =
    overrides.sender ??
    (delivers && config.deliveryThreads > 0 && !overrides.clock
      ? createThreadedSender({ ...senderOptions, clock, threads: config.deliveryThreads })
      : createHttpSender({ ...senderOptions, clock }));
  const worker = delivers
    ? createDeliveryWorker({
        store,
        sender,
        clock,
        wake,
        logger,
        storeFailureAdvice,
        schedule: config.retrySchedule,
        concurrency: config.deliveryConcurrency,
        concurrencyPerWebhook: config.deliveryConcurrencyPerWebhook,
        timeoutMs: config.deliveryTimeoutMs,
        observer: metrics,
        ...(overrides.random ? { random: overrides.random } : {}),
        ...(overrides.deliveryHoldBodyLength
          ? { holdBodyLength: overrides.deliveryHoldBodyLength }
          : {}),
      })
    : undefined;
  if (worker) metrics.trackInFlight(() => worker.inFlight());
  const workersHeard = store.deliveryWorkersHeard?.bind(store);
  if (workersHeard) metrics.trackWorkersHeard(workersHeard);
  const builtIns = builtInSources(config);
  const registry = createSourceRegistry({
    store,
    clock,
    builtIns,
    bodyLimitBytes: config.bodyLimitBytes,
    buildVerifier: (spec, secret) => createVerifier(spec, secret ?? undefined),
  });
  const app = buildServer({
    api: servesApi
      ? {
          webhooks: createWebhookService({ store, clock, wake }),
          incoming: createIncomingService({
            store,
            clock,
            logger,
            sources: registry,
            bodies: { kind: bodyKind, parse: parseBody },
            rateLimiter: new RateLimiter(clock),
          }),
          sources: createSourceService({
            store,
            clock,
            registry,
            bodyLimitBytes: config.bodyLimitBytes,
          }),
          apiKey,
        }
      : undefined,
    metrics: metrics.registry,
    bodyLimitBytes: config.bodyLimitBytes,
    requestTimeoutMs: config.requestTimeoutMs,
    corsOrigins: config.corsOrigins,
    databaseAnswers: () => store.ping(),
    clock,
    logger,
  });

  if (servesApi) {
    const setting = (name: string) => `HERALD_INCOMING_SECRET_${name.toUpperCase()}`;
    const unset: string[] = [];
    for (const name of INCOMING_SERVICES) {
      if (builtIns.secret(name) !== undefined) continue;
      // A blank secret is a mistake to fix; an unset one is the normal state of a source not used.
      if (config.blankIncomingSecrets.includes(name)) {
        logger.warn(
          { source: name },
          `Incoming webhooks for '${name}' will be refused: ${setting(name)} is blank. Set it to the secret the sender signs with.`,
        );
      } else unset.push(name);
    }
    if (unset.length > 0) {
      logger.info(
        { sources: unset },
        `Incoming webhooks for ${listed(unset.map((name) => `'${name}'`))} will be refused until ${listed(unset.map(setting))} ${unset.length === 1 ? "is" : "are"} set (only needed for a sender that posts to ${unset.length === 1 ? "that source" : "those sources"}).`,
      );
    }
    if (config.corsOrigins.length > 0) {
      logger.info(
        { corsOrigins: config.corsOrigins },
        config.corsOrigins.includes("*")
          ? "Browser pages from any origin may call the API (HERALD_CORS_ORIGINS=*); each request still needs the API key."
          : `Browser pages from ${config.corsOrigins.join(", ")} may call the API (HERALD_CORS_ORIGINS); each request still needs the API key.`,
      );
    }
    const stripeSecret = builtIns.secret("stripe");
    if (stripeSecret !== undefined && !stripeSecret.startsWith("whsec_")) {
      logger.warn(
        { source: "stripe" },
        "HERALD_INCOMING_SECRET_STRIPE does not start with whsec_, as the signing secrets in Stripe's dashboard do. Webhooks Stripe signs (Stripe-Signature) verify only with the endpoint's secret copied whole; X-Webhook-Signature works with any secret.",
      );
    }
  }
  if (config.allowPrivateTargets && delivers) {
    logger.warn(
      {},
      "HERALD_ALLOW_PRIVATE_TARGETS is on: deliveries may reach loopback and private network addresses.",
    );
  }

  let stopped: Promise<void> | undefined;

  /** Tells the operator, after a restart or a crash, that the deliveries left waiting are being sent. */
  async function reportWaitingDeliveries(
    counted: Promise<{ due: number; later: number; held: number }>,
  ): Promise<void> {
    try {
      const { due, later, held } = await counted;
      const message = waitingDeliveriesMessage(due, later, held);
      if (message) logger.info({ due, later, held }, message);
    } catch (error) {
      // Only a report: the worker claims the same deliveries whether or not it is counted.
      logger.debug({ err: error }, "Herald could not count the deliveries waiting at start.");
    }
  }

  /** " 12 deliveries wait in the database…", or nothing: a count that takes over a second is skipped. */
  async function leftWaiting(): Promise<string> {
    const count = await within(store.countPendingDeliveries(clock.now()), 1_000).catch(
      () => undefined,
    );
    const waiting = count ? count.due + count.later + count.held : 0;
    if (!count || waiting === 0) return "";
    return ` ${waiting === 1 ? "1 delivery waits" : `${waiting} deliveries wait`} in the database (${count.later} of them retries waiting for their time): the running workers, or the next to start, send ${waiting === 1 ? "it" : "them"}.`;
  }

  return {
    app,
    store,
    apiKey,
    logger,

    async start() {
      const address = await app.listen({
        port: config.port,
        host: config.host,
        listenTextResolver: (at) => `Listening for HTTP requests at ${at}.`,
      });
      // Counted before the worker starts, so that its first attempts do not change the count.
      const waiting = worker ? store.countPendingDeliveries(clock.now()) : undefined;
      waiting?.catch(() => {});
      await worker?.start();
      const what =
        config.role === "worker"
          ? `delivering (health at ${address}/healthz)`
          : `the API is at ${address}/api${worker ? "" : " (this process does not deliver)"}`;
      logger.info(
        { address, role: config.role, database: config.database.kind },
        `Herald is ready as role '${config.role}': ${what}; database: ${describeDatabase(config)}.`,
      );
      if (waiting) void reportWaitingDeliveries(waiting);
      return address;
    },

    stop() {
      stopped ??= (async () => {
        const inFlight = worker?.inFlight() ?? 0;
        logger.info(
          { inFlight },
          inFlight === 0
            ? "Herald is stopping: no new requests are taken; attempts in flight may finish."
            : `Herald is stopping: no new requests are taken; it waits up to ${config.shutdownGraceMs / 1000} s (HERALD_SHUTDOWN_GRACE) for the ${inFlight === 1 ? "1 attempt" : `${inFlight} attempts`} in flight to finish.`,
        );
        // Requests in flight may finish within the grace; a client that stopped sending halfway
        // would hold its connection (and the shutdown) until it gave up, so it is cut off then.
        const cut = setTimeout(() => app.server.closeAllConnections(), config.shutdownGraceMs);
        // The worker stops taking deliveries now, not once the API has drained: a retry falling
        // due meanwhile is left to the next worker, as the line above says.
        const workerStopped = worker?.stop(config.shutdownGraceMs);
        await app.close();
        clearTimeout(cut);
        const cutOff = (await workerStopped) ?? 0;
        await sender.close();
        // What the close cut off is given back (uncounted) before the store closes.
        await worker?.settle(CUT_OFF_SETTLE_MS);
        // Said at the stop, not only at the next start: what this process leaves to be sent.
        const left = worker ? await leftWaiting() : "";
        await opened.closeWake();
        await store.close();
        if (cutOff > 0) {
          logger.warn(
            { cutOff },
            `Herald stopped once HERALD_SHUTDOWN_GRACE (${config.shutdownGraceMs / 1000} s) ran out, cutting off ${cutOff === 1 ? "1 attempt" : `${cutOff} attempts`} whose receiver had not finished answering. An attempt cut off before its receiver's status came is not counted: the delivery stays pending and is sent again at once by the next worker to run (the receiver may get it twice). One whose status had come is recorded with it.${left}`,
          );
        } else {
          logger.info({}, `Herald stopped cleanly.${left}`);
        }
      })();
      return stopped;
    },
  };
}

/** How long a stop waits for the attempts it cut off to be given back. */
const CUT_OFF_SETTLE_MS = 2_000;

/** The start line about deliveries left waiting, or undefined when there are none. */
export function waitingDeliveriesMessage(due: number, later: number, held = 0): string | undefined {
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const parts = [
    due === 0
      ? ""
      : `${plural(due, "delivery was", "deliveries were")} waiting in the database to be sent; Herald is sending ${due === 1 ? "it" : "them"} now.`,
    held === 0
      ? ""
      : `${plural(held, "delivery is", "deliveries are")} leased to a worker that no longer runs: ${held === 1 ? "it is" : "they are"} sent again within about 10 s.`,
    later === 0
      ? ""
      : `${plural(later, "retry waits", "retries wait")} in the database for ${later === 1 ? "its" : "their"} time.`,
  ].filter(Boolean);
  return parts.length === 0 ? undefined : parts.join(" ");
}

/** Which database this process uses, for the start line: never its password. */
function describeDatabase(config: Config): string {
  const { database } = config;
  if (database.kind === "sqlite") return `SQLite file ${database.path}`;
  const target = postgresTarget(database.url);
  return `PostgreSQL database ${target.database} at ${target.where}, schema ${target.schema ?? "from the user's default search_path"}`;
}
