/** Structured JSON logs: Powertools Logger in Lambda (CloudWatch), pino locally (stdout); see observability/logger.ts. */
export { logger } from "./observability/logger.js";
