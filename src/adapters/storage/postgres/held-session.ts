/**
 * A PostgreSQL session of its own, for what lives as long as a session does (a LISTEN, an advisory
 * lock): set up by `prepare`, and opened and set up again a second after it is lost.
 */
import pg from "pg";

export interface HeldSession {
  close(): Promise<void>;
}

/** Opens the session; resolves once the first one is set up. */
export async function holdSession(
  config: pg.ClientConfig,
  prepare: (client: pg.Client) => Promise<void>,
  onLost: (error: Error) => void,
): Promise<HeldSession> {
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  async function connect(): Promise<void> {
    const next = new pg.Client(config);
    next.on("error", (error) => {
      if (closed) return;
      onLost(error);
      next.end().catch(() => undefined);
      scheduleReconnect();
    });
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
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}
