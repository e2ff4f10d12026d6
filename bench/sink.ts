/** The ingest baseline: a bare node:http server that reads each body and answers 200 "OK". */
import { createServer } from "node:http";
import { listenAndAnnounce } from "./shared.js";

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(200, { "content-type": "text/plain" }).end("OK"));
});

listenAndAnnounce(server);
