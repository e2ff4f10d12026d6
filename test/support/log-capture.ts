/** A logger whose lines a test can read. */
import { Writable } from "node:stream";
import { createLogger } from "../../src/adapters/logging.js";

export interface LogLine {
  level: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
  msg: string;
  [field: string]: unknown;
}

/** A logger at `level`, writing lines as Herald's own does, whose lines are kept in `lines`. */
export function capturedLogger(level: string) {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger(level, stream), lines };
}
