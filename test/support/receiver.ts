/** A real local HTTP server that records webhook deliveries, for tests. */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  receivedAt: number;
}

export interface Receiver {
  url: string;
  requests: ReceivedRequest[];
  close(): Promise<void>;
}

/**
 * Starts a receiver; `respond` decides each answer (default 200 "OK"). It gets the request and
 * its 0-based index among all requests received.
 */
export async function startReceiver(
  respond: (request: ReceivedRequest, index: number, res: ServerResponse) => void = (
    _r,
    _i,
    res,
  ) => {
    res.writeHead(200, { "content-type": "text/plain" }).end("OK");
  },
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const request: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        receivedAt: Date.now(),
      };
      const index = requests.length;
      requests.push(request);
      respond(request, index, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Starts a receiver and then `start()` (a Herald), and closes both when the test ends. */
export async function withReceiver<H extends { stop(): Promise<void> }>(
  t: { after(fn: () => Promise<void>): void },
  start: () => Promise<H>,
  respond?: Parameters<typeof startReceiver>[0],
): Promise<{ herald: H; receiver: Receiver }> {
  const receiver = await startReceiver(respond);
  let herald: H;
  try {
    herald = await start();
  } catch (error) {
    await receiver.close();
    throw error;
  }
  t.after(async () => {
    await receiver.close();
    await herald.stop();
  });
  return { herald, receiver };
}
