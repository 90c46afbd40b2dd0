import type { DestinationStream, Logger } from "pino";
import pino from "pino";
import type { LogLevel } from "../config/config.js";
import { scrubPans } from "../domain/pan.js";

/**
 * Structured JSON logs (pino). Card data must never reach them (PCI DSS 3.3.1, 3.4, 10.3):
 * request bodies are never logged, known sensitive paths are redacted, and as a last line every
 * serialized log line passes a scrubber that masks any Luhn-valid 13–19 digit run, so a number
 * that slipped into an error message or a field no one thought of is still masked.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "payvault" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          "req.headers.authorization",
          "headers.authorization",
          "authorization",
          "card",
          "*.card",
          "number",
          "*.number",
          "cvc",
          "*.cvc",
          "body",
          "*.body",
          "secret",
          "*.secret",
        ],
        censor: "[redacted]",
      },
      hooks: { streamWrite: (line: string) => scrubPans(line) },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

export type { Logger };
