/**
 * The daemon's logger: JSON lines with the same fields in Lambda and locally. In a Lambda
 * function it is Powertools Logger (level, message, timestamp, service, the function's context,
 * cold start, X-Ray trace id); elsewhere pino, shaped the same way. Every line carries the
 * request's fields (log-context.ts) and passes redaction first (redaction.ts). The level is the
 * configuration's (config.ts, LOG_LEVEL: trace, debug, info, warn, error, fatal, silent): read
 * from the environment when this loads, and set again from the daemon's config when the
 * process's daemon is built (setLogLevel).
 *
 * Call shape is pino's: `logger.warn({ fields }, "message")` or `logger.warn("message")`.
 */
import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";
import { type Logger as PinoLogger, pino } from "pino";
import { type ConfiguredLogLevel, logLevel as configuredLogLevel } from "../config.js";
import { logContext } from "./log-context.js";
import { redact, redactText } from "./redaction.js";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export interface LogFn {
  (message: string): void;
  (fields: object, message?: string): void;
}

export type DaemonLogger = Record<LogLevel, LogFn>;

export const SERVICE_NAME = process.env.POWERTOOLS_SERVICE_NAME || "dify-plugin-daemon";

export const inLambda = (): boolean =>
  Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME) && process.env.AWS_LAMBDA_FUNCTION_NAME !== "local";

type Write = (level: LogLevel, fields: Record<string, unknown>, message: string) => void;

/** A writer whose level can change (the process's own, set again from the daemon's config). */
interface LevelledWrite {
  write: Write;
  setLevel(level: ConfiguredLogLevel): void;
}

function pinoWriter(level: ConfiguredLogLevel, destination?: NodeJS.WritableStream): LevelledWrite {
  const options = {
    level,
    base: { service: SERVICE_NAME },
    messageKey: "message",
    timestamp: () => `,"timestamp":"${new Date().toISOString()}"`,
    formatters: { level: (label: string) => ({ level: label.toUpperCase() }) },
  };
  // Standard output is written synchronously, as upstream's Go logger writes it: a line is out
  // before the call returns, so a crash or kill -9 loses none, and no worker thread is woken per
  // line (pino's default hands each write to libuv's thread pool: a futex wake, a completion
  // event and a second thread busy per request line).
  const log: PinoLogger = pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
  return {
    write: (lvl, fields, message) => log[lvl](fields, message),
    setLevel: (next) => {
      log.level = next;
    },
  };
}

let powertools: PowertoolsLogger | undefined;

/** The Powertools Logger behind `logger` in Lambda (its middleware adds the invocation's context). */
export function powertoolsLogger(): PowertoolsLogger | undefined {
  return powertools;
}

const powertoolsLevel = (level: ConfiguredLogLevel) =>
  level === "fatal" ? "CRITICAL" : level === "silent" ? "SILENT" : (level.toUpperCase() as "INFO");

function powertoolsWriter(level: ConfiguredLogLevel): LevelledWrite {
  const log = new PowertoolsLogger({ serviceName: SERVICE_NAME, logLevel: powertoolsLevel(level) });
  powertools = log;
  return {
    write: (lvl, fields, message) => {
      if (lvl === "fatal") log.critical(message, fields);
      else log[lvl](message, fields);
    },
    setLevel: (next) => log.setLogLevel(powertoolsLevel(next)),
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
  createLogger(pinoWriter(level, destination).write);

let level = configuredLogLevel();
const processWriter: LevelledWrite = inLambda() ? powertoolsWriter(level) : pinoWriter(level);
/** Where captureLogs sends the lines while a test reads them. */
let captured: Write | undefined;

export const logger: DaemonLogger = createLogger((lvl, fields, message) =>
  (captured ?? processWriter.write)(lvl, fields, message),
);

/** The process's level from now on: the daemon's configured one (DaemonConfig.logLevel). */
export function setLogLevel(next: ConfiguredLogLevel): void {
  if (next === level) return;
  level = next;
  processWriter.setLevel(next);
}

/** Sends the process's log lines to `destination` instead (tests capture them); returns a restore. */
export function captureLogs(destination: NodeJS.WritableStream, captureLevel: LogLevel = "trace"): () => void {
  const previous = captured;
  captured = pinoWriter(captureLevel, destination).write;
  return () => {
    captured = previous;
  };
}
