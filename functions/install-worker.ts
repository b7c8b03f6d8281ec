/** Lambda (asynchronous invoke): carries out one install task created by the management API. */
import middy from "@middy/core";
import { z } from "zod";
import { sharedDaemon } from "../src/daemon.js";

const installJob = z.object({ tenantId: z.string().min(1), taskId: z.string().min(1) });

export const handler = middy(async (event: unknown): Promise<void> => {
  const job = installJob.parse(event);
  const daemon = await sharedDaemon();
  await daemon.installer.runTask(job.tenantId, job.taskId);
});
