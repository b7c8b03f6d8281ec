/** Structured JSON logs: Powertools Logger in Lambda (CloudWatch), pino locally (stdout); see observability/logger.ts. */
export { logger, setLogLevel } from "./observability/logger.js";
