/**
 * Herald's log lines: one JSON object per line, for machines, that a person can also read as it
 * stands: the level as a word ("warn", not 40) and the time as an ISO date, beside the message.
 */
import type { DestinationStream, Logger } from "pino";
import { pino } from "pino";

/** A logger at `level`, writing to standard output unless `destination` is given. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: null,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
