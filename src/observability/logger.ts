/**
 * The daemon's logger: JSON lines with the same fields in Lambda and locally. In a Lambda
 * function it is Powertools Logger (level, message, timestamp, service, the function's context,
 * cold start, X-Ray trace id); elsewhere pino, shaped the same way. Every line carries the
 * request's fields (log-context.ts) and passes redaction first (redaction.ts). The level is
 * LOG_LEVEL (trace, debug, info, warn, error, fatal, silent), read once when this loads.
 *
 * Call shape is pino's: `logger.warn({ fields }, "message")` or `logger.warn("message")`.
 */
import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";
import { type Logger as PinoLogger, pino } from "pino";
import { logContext } from "./log-context.js";
import { redact, redactText } from "./redaction.js";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export interface LogFn {
  (message: string): void;
  (fields: object, message?: string): void;
}

export type DaemonLogger = Record<LogLevel, LogFn>;

export const SERVICE_NAME = process.env.POWERTOOLS_SERVICE_NAME || "dify-plugin-daemon";

const LEVELS: readonly string[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/** LOG_LEVEL as given, or info when it names no level. */
export function logLevelOf(value: string | undefined): LogLevel | "silent" {
  const level = (value ?? "info").toLowerCase();
  return (LEVELS.includes(level) ? level : "info") as LogLevel | "silent";
}

export const inLambda = (): boolean =>
  Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME) && process.env.AWS_LAMBDA_FUNCTION_NAME !== "local";

type Write = (level: LogLevel, fields: Record<string, unknown>, message: string) => void;

function pinoWriter(level: LogLevel | "silent", destination?: NodeJS.WritableStream): Write {
  const options = {
    level,
    base: { service: SERVICE_NAME },
    messageKey: "message",
    timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
    formatters: { level: (label: string) => ({ level: label.toUpperCase() }) },
  };
  const log: PinoLogger = destination ? pino(options, destination) : pino(options);
  return (lvl, fields, message) => log[lvl](fields, message);
}

let powertools: PowertoolsLogger | undefined;

/** The Powertools Logger behind `logger` in Lambda (its middleware adds the invocation's context). */
export function powertoolsLogger(): PowertoolsLogger | undefined {
  return powertools;
}

function powertoolsWriter(level: LogLevel | "silent"): Write {
  const logLevel = level === "fatal" ? "CRITICAL" : level === "silent" ? "SILENT" : (level.toUpperCase() as "INFO");
  powertools = new PowertoolsLogger({ serviceName: SERVICE_NAME, logLevel });
  const log = powertools;
  return (lvl, fields, message) => {
    if (lvl === "fatal") log.critical(message, fields);
    else log[lvl](message, fields);
  };
}

/** A logger writing through `write`, with the request's fields and redaction applied. */
export function createLogger(write: Write): DaemonLogger {
  const at =
    (level: LogLevel): LogFn =>
    (first: string | object, message?: string) => {
      const [fields, text] = typeof first === "string" ? [{}, first] : [first, message ?? ""];
      write(level, redact({ ...logContext(), ...fields }) as Record<string, unknown>, redactText(text));
    };
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
  };
}

/** A pino-backed logger writing to `destination`: for tests that read the log lines. */
export const loggerTo = (destination: NodeJS.WritableStream, level: LogLevel = "trace"): DaemonLogger =>
  createLogger(pinoWriter(level, destination));

const level = logLevelOf(process.env.LOG_LEVEL);
let writer: Write = inLambda() ? powertoolsWriter(level) : pinoWriter(level);

export const logger: DaemonLogger = createLogger((lvl, fields, message) => writer(lvl, fields, message));

/** Sends the process's log lines to `destination` instead (tests capture them); returns a restore. */
export function captureLogs(destination: NodeJS.WritableStream, captureLevel: LogLevel = "trace"): () => void {
  const previous = writer;
  writer = pinoWriter(captureLevel, destination);
  return () => {
    writer = previous;
  };
}
