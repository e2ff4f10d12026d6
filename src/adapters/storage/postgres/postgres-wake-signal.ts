/**
 * Wakes this process's delivery loop when any process commits a trigger: LISTEN on the channel the
 * PostgreSQL store notifies. The listening connection reconnects after a loss; while it is down,
 * the delivery loop's poll still finds the work, only later.
 */
import type { Logger, WakeSignal } from "../../../domain/ports.js";
import { holdSession, sessionLines } from "./held-session.js";
import { changedWebhookOf, DELIVERY_CHANNEL, postgresClientConfig } from "./postgres-store.js";

export interface PostgresWakeSignal extends WakeSignal {
  close(): Promise<void>;
}

/** Starts listening; resolves once the first LISTEN is in place. */
export async function createPostgresWakeSignal(options: {
  url: string;
  schema?: string;
  logger: Logger;
}): Promise<PostgresWakeSignal> {
  const listeners = new Set<(changedWebhook?: string) => void>();
  const wakeAll = (changedWebhook?: string) => {
    for (const listener of listeners) listener(changedWebhook);
  };
  const session = await holdSession(
    postgresClientConfig(options),
    async (client) => {
      // A webhook changed in any process is named (see webhookChangeNotice).
      client.on("notification", ({ payload }) => wakeAll(changedWebhookOf(payload)));
      await client.query(`LISTEN ${DELIVERY_CHANNEL}`);
      // Work committed while nobody was listening is picked up now.
      wakeAll();
    },
    sessionLines(
      options.logger,
      "wakes delivery workers",
      "Deliveries continue on the poll meanwhile",
    ),
  );

  return {
    notify: wakeAll,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: () => session.close(),
  };
}
