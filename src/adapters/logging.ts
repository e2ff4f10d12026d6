/**
 * Herald's log lines: one JSON object per line, for machines, that a person can also read as it
 * stands: the level as a word ("warn", not 40) and the time as an ISO date, beside the message.
 */
import type { DestinationStream, Logger } from "pino";
import { pino, stdSerializers } from "pino";

/**
 * An error as a log line carries it: its type, message and code, which the line's message
 * explains (a refused connection, a timeout, a full disk). The stack trace would bury that, so it
 * is kept for `debug` and `trace`; a line about a fault in Herald itself adds it on its own.
 */
function errorFields(stackKept: boolean) {
  return (error: unknown) => {
    const fields = stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
    if (stackKept) return fields;
    const { stack: _stack, ...rest } = fields;
    return rest;
  };
}

/** A logger at `level`, writing to standard output unless `destination` is given. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: null,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: errorFields(level === "debug" || level === "trace") },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
