/**
 * A TCP proxy in front of a server that can go silent: while silenced it forwards nothing either
 * way and closes nothing, as a network that drops packets does; resumed, what waited flows on. It
 * can also cut every connection at once, or one connection right after a given message.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface SilenceableProxy {
  port: number;
  silence(): void;
  resume(): void;
  /** Drops every connection open now, as a restarted router or pooler does; new ones pass. */
  cut(): void;
  /**
   * Once: the connection whose client sends bytes holding `marker` is dropped when that client
   * sends anything more, as a process killed right after that request was answered would be.
   */
  cutAfter(marker: string): void;
  close(): Promise<void>;
}

export async function startSilenceableProxy(host: string, port: number): Promise<SilenceableProxy> {
  const sockets = new Set<Socket>();
  /** What arrived while silent, per destination, sent on when resumed. */
  const held = new Map<Socket, Buffer[]>();
  let silent = false;
  let cutMarker: string | undefined;
  /** The client connection to drop at its next message. */
  let marked: Socket | undefined;
  const forward = (from: Socket, to: Socket) =>
    from.on("data", (chunk: Buffer) => {
      if (from === marked) {
        from.destroy();
        to.destroy();
        return;
      }
      if (cutMarker !== undefined && chunk.includes(cutMarker)) {
        cutMarker = undefined;
        marked = from;
      }
      if (silent) held.get(to)?.push(chunk);
      else to.write(chunk);
    });
  const server = createServer((client) => {
    const upstream = createConnection({ host, port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      held.set(socket, []);
      socket.on("error", () => undefined);
      socket.on("close", () => {
        sockets.delete(socket);
        held.delete(socket);
      });
    }
    forward(client, upstream);
    forward(upstream, client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    port: address.port,
    silence() {
      silent = true;
    },
    resume() {
      silent = false;
      for (const [socket, chunks] of held) {
        for (const chunk of chunks.splice(0)) socket.write(chunk);
      }
    },
    cut() {
      for (const socket of sockets) socket.destroy();
    },
    cutAfter(marker) {
      cutMarker = marker;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
