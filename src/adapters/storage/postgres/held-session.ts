/**
 * A PostgreSQL session of its own, for what lives as long as a session does (a LISTEN, an advisory
 * lock): set up by `prepare`, and opened and set up again a second after it is lost. An idle
 * session hears nothing when the network to the server goes silent, so it is asked a trivial
 * statement every few seconds and counts as lost when no answer comes.
 */
import pg from "pg";
import type { Logger } from "../../../domain/ports.js";
import { answeredWithin } from "./answered-within.js";

export interface HeldSession {
  close(): Promise<void>;
}

/** What the owner of a session is told, once per outage rather than once per reconnection. */
export interface SessionEvents {
  lost(error: Error): void;
  /** The session is back, and has stayed up for a few seconds. */
  restored(outage: { downMs: number; losses: number }): void;
}

export interface HoldTimings {
  /** How often an idle session is checked. */
  checkEveryMs: number;
  /** How long a check may wait for its answer. */
  answerWithinMs: number;
  /** How long a session must stay up after a loss before it counts as restored. */
  stableAfterMs: number;
}

const DEFAULT_TIMINGS: HoldTimings = {
  checkEveryMs: 10_000,
  answerWithinMs: 5_000,
  stableAfterMs: 5_000,
};

/** Opens the session; resolves once the first one is set up. */
export async function holdSession(
  config: pg.ClientConfig,
  prepare: (client: pg.Client) => Promise<void>,
  events: SessionEvents,
  timings: HoldTimings = DEFAULT_TIMINGS,
): Promise<HeldSession> {
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let checking = false;
  /** Set while the session is lost, or back but not yet for long. */
  let outage: { since: number; losses: number; stable?: NodeJS.Timeout } | undefined;

  function lose(lost: pg.Client, error: Error): void {
    if (closed || lost !== client) return;
    client = undefined;
    lost.end().catch(() => undefined);
    if (outage) {
      outage.losses++;
      if (outage.stable) clearTimeout(outage.stable);
      outage.stable = undefined;
    } else {
      outage = { since: Date.now(), losses: 1 };
      events.lost(error);
    }
    scheduleReconnect();
  }

  async function connect(): Promise<void> {
    const next = new pg.Client(config);
    next.on("error", (error) => lose(next, error));
    try {
      await next.connect();
      await prepare(next);
    } catch (error) {
      await next.end().catch(() => undefined);
      throw error;
    }
    // Closed while this one was connecting: nobody will end it but us.
    if (closed) {
      await next.end().catch(() => undefined);
      return;
    }
    client = next;
    if (outage && !outage.stable) {
      const current = outage;
      const downMs = Date.now() - current.since;
      current.stable = setTimeout(() => {
        outage = undefined;
        events.restored({ downMs, losses: current.losses });
      }, timings.stableAfterMs);
      current.stable.unref();
    }
  }

  function scheduleReconnect(): void {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch(() => scheduleReconnect());
    }, 1000);
    retry.unref();
  }

  const check = setInterval(() => {
    const current = client;
    if (!current || checking) return;
    checking = true;
    current
      .query(answeredWithin(timings.answerWithinMs, "SELECT 1"))
      .then(
        () => undefined,
        (error: Error) => lose(current, error),
      )
      .finally(() => {
        checking = false;
      });
  }, timings.checkEveryMs);
  check.unref();

  try {
    await connect();
  } catch (error) {
    clearInterval(check);
    throw error;
  }

  return {
    async close() {
      closed = true;
      clearInterval(check);
      if (retry) clearTimeout(retry);
      if (outage?.stable) clearTimeout(outage.stable);
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}

/** "after 8.1 s, lost 3 times meanwhile": how long a session was away, for a log line. */
export function describeOutage(downMs: number, losses: number): string {
  const after = `after ${(downMs / 1000).toFixed(1)} s`;
  return losses > 1 ? `${after}, lost ${losses} times meanwhile` : after;
}

/** The lines a held session's loss and return are told in: what it does, and what happens meanwhile. */
export function sessionLines(
  logger: Logger | undefined,
  does: string,
  meanwhile: string,
  onLost?: () => void,
): SessionEvents {
  return {
    lost(error) {
      onLost?.();
      logger?.warn(
        { err: error },
        `Lost the PostgreSQL connection that ${does}; reconnecting. ${meanwhile}, and a line says when it is back.`,
      );
    },
    restored: ({ downMs, losses }) =>
      logger?.info(
        { downMs, losses },
        `The PostgreSQL connection that ${does} is back, ${describeOutage(downMs, losses)}.`,
      ),
  };
}
