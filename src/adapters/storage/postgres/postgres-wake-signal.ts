/**
 * Wakes this process's delivery loop when any process commits a trigger: LISTEN on the channel the
 * PostgreSQL store notifies. The listening connection reconnects after a loss; while it is down,
 * the delivery loop's poll still finds the work, only later.
 */
import pg from "pg";
import type { Logger, WakeSignal } from "../../../domain/ports.js";
import { DELIVERY_CHANNEL, postgresClientConfig } from "./postgres-store.js";

export interface PostgresWakeSignal extends WakeSignal {
  close(): Promise<void>;
}

/** Starts listening; resolves once the first LISTEN is in place. */
export async function createPostgresWakeSignal(options: {
  url: string;
  schema?: string;
  logger: Logger;
}): Promise<PostgresWakeSignal> {
  const listeners = new Set<() => void>();
  const wakeAll = () => {
    for (const listener of listeners) listener();
  };
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  async function connect(): Promise<void> {
    const next = new pg.Client(postgresClientConfig(options));
    next.on("notification", wakeAll);
    next.on("error", (error) => {
      options.logger.warn(
        { err: error },
        "Lost the PostgreSQL connection that wakes delivery workers; reconnecting. Deliveries continue on the poll meanwhile.",
      );
      next.end().catch(() => undefined);
      scheduleReconnect();
    });
    await next.connect();
    await next.query(`LISTEN ${DELIVERY_CHANNEL}`);
    client = next;
    // Work committed while we were not listening is picked up now.
    wakeAll();
  }

  function scheduleReconnect(): void {
    if (closed || retry) return;
    client = undefined;
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch(() => scheduleReconnect());
    }, 1000);
    retry.unref();
  }

  await connect();

  return {
    notify: wakeAll,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
