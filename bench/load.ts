/** The load generator: concurrent clients, or a steady rate, on one undici Pool per target. */
import { createHmac } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import { wallClockMs } from "./shared.js";

/** What a batch of triggers measured. */
export interface TriggerRun {
  /** When trigger n was sent (wall-clock ms), indexed by n. */
  sentAt: Float64Array;
  /** Time to a 200 answer of each trigger answered 200, in ms. */
  latencies: number[];
  /** Triggers not answered 200. */
  failed: number;
  firstFailure: string | undefined;
}

/** What an ingest run measured. */
export interface IngestRun {
  ok: number;
  /** Time to a 200 answer, in ms. */
  latencies: number[];
  /** Answers other than 200, and requests that got no answer. */
  failed: number;
  firstFailure: string | undefined;
  elapsedMs: number;
}

/** A request for the load generator. */
interface Post {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** Runs `clients` loops; each sends the posts `next` returns until it returns undefined. */
async function runClients<P extends Post>(
  origin: string,
  clients: number,
  next: () => P | undefined,
  onAnswer: (post: P, answer: number | Error, sentAt: number) => void,
): Promise<void> {
  const pool = new Pool(origin, { connections: clients });
  const client = async () => {
    for (let post = next(); post !== undefined; post = next()) {
      const sentAt = wallClockMs();
      try {
        const { path, headers, body } = post;
        const response = await pool.request({ method: "POST", path, headers, body });
        await response.body.dump();
        onAnswer(post, response.statusCode, sentAt);
      } catch (error) {
        onAnswer(post, error as Error, sentAt);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, client));
  } finally {
    await pool.close();
  }
}

function describe(answer: number | Error): string {
  return typeof answer === "number" ? `HTTP ${answer}` : answer.message;
}

/** The body of trigger n: user.created carrying data.n = n. */
function triggerBody(n: number): string {
  const data = { n, user: { id: `user_${n}`, email: `user${n}@example.test` } };
  return JSON.stringify({ event: "user.created", data });
}

function emptyTriggerRun(count: number): TriggerRun {
  return { sentAt: new Float64Array(count), latencies: [], failed: 0, firstFailure: undefined };
}

/** Records trigger n's answer in `run`. */
function recordTrigger(run: TriggerRun, n: number, answer: number | Error, sentAt: number): void {
  run.sentAt[n] = sentAt;
  if (answer === 200) run.latencies.push(wallClockMs() - sentAt);
  else {
    run.failed++;
    run.firstFailure ??= describe(answer);
  }
}

/** Fires `count` triggers of user.created carrying data.n = 0…count-1, as fast as answered. */
export async function fireTriggers(
  origin: string,
  path: string,
  apiKey: string,
  count: number,
  clients: number,
): Promise<TriggerRun> {
  const run = emptyTriggerRun(count);
  const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  let sent = 0;
  const next = (): (Post & { n: number }) | undefined => {
    if (sent >= count) return undefined;
    const n = sent++;
    return { n, path, headers, body: triggerBody(n) };
  };
  await runClients(origin, clients, next, ({ n }, answer, sentAt) =>
    recordTrigger(run, n, answer, sentAt),
  );
  return run;
}

/**
 * Fires `count` triggers like `fireTriggers`, but at a steady `rate` per second whatever the
 * answers (an open loop on up to `clients` connections), so a system is measured below saturation.
 */
export async function fireTriggersAtRate(
  origin: string,
  path: string,
  apiKey: string,
  count: number,
  options: { rate: number; clients: number },
): Promise<TriggerRun> {
  const run = emptyTriggerRun(count);
  const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
  const pool = new Pool(origin, { connections: options.clients });
  const answers: Array<Promise<void>> = [];
  const started = wallClockMs();
  try {
    for (let n = 0; n < count; n++) {
      const wait = started + (n * 1000) / options.rate - wallClockMs();
      if (wait >= 1) await sleep(wait);
      const sentAt = wallClockMs();
      answers.push(
        pool.request({ method: "POST", path, headers, body: triggerBody(n) }).then(
          async (response) => {
            await response.body.dump();
            recordTrigger(run, n, response.statusCode, sentAt);
          },
          (error: Error) => recordTrigger(run, n, error, sentAt),
        ),
      );
    }
    await Promise.all(answers);
  } finally {
    await pool.close();
  }
  return run;
}

const PADDING = "x".repeat(2048);
/** Ingest bodies are unique across runs too, so a warm-up's ids never make the run's duplicates. */
let ingestSerial = 0;

/** A unique JSON body of exactly `bytes` bytes. */
function ingestBody(n: number, bytes: number): string {
  const head = `{"id":"bench_${n}","type":"bench.ingest","padding":"`;
  return `${head}${PADDING.slice(0, bytes - head.length - 2)}"}`;
}

/** Posts unique signed JSON bodies to `path` for `durationMs`. */
export async function postSignedBodies(
  origin: string,
  path: string,
  secret: string,
  options: { clients: number; durationMs: number; bodyBytes: number },
): Promise<IngestRun> {
  const run: IngestRun = {
    ok: 0,
    latencies: [],
    failed: 0,
    firstFailure: undefined,
    elapsedMs: 0,
  };
  const started = wallClockMs();
  const deadline = started + options.durationMs;
  const next = (): Post | undefined => {
    if (wallClockMs() >= deadline) return undefined;
    const body = ingestBody(ingestSerial++, options.bodyBytes);
    const signature = createHmac("sha256", secret).update(body).digest("hex");
    return {
      path,
      headers: { "content-type": "application/json", "x-webhook-signature": signature },
      body,
    };
  };
  await runClients(origin, options.clients, next, (_post, answer, sentAt) => {
    if (answer === 200) {
      run.ok++;
      run.latencies.push(wallClockMs() - sentAt);
    } else {
      run.failed++;
      run.firstFailure ??= describe(answer);
    }
  });
  run.elapsedMs = wallClockMs() - started;
  return run;
}
