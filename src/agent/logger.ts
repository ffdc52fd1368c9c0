// Structured JSON logs on stdout (one object a line), the format log collectors expect from a
// DaemonSet or a systemd unit.

import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

type LogLevel = "debug" | "info" | "warn" | "error";

export function parseLogLevel(value: string): LogLevel {
  if (value === "debug" || value === "info" || value === "warn" || value === "error") return value;
  throw new Error(`--log-level must be debug, info, warn or error, not ${JSON.stringify(value)}`);
}

export function createLogger(level: LogLevel = "info", destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { component: "symroute-agent", pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}
