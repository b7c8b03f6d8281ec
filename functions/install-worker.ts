/** Lambda (asynchronous invoke): carries out one install task created by the management API. */
import middy from "@middy/core";
import { sharedDaemon } from "../src/daemon.js";
import { lambdaObservability } from "../src/observability/lambda.js";
import { installJobPayloadSchema } from "../src/ports/install-queue.js";

export const handler = middy(async (event: unknown): Promise<void> => {
  const job = installJobPayloadSchema.parse(event);
  const daemon = await sharedDaemon();
  await daemon.installer.runTask(job.tenantId, job.taskId);
}).use(lambdaObservability());
