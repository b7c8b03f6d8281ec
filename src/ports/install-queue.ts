/**
 * Runs install tasks after the HTTP call that created them has answered. Locally the task runs
 * in the daemon's process; on AWS the management handler hands it to the install-worker Lambda
 * (an asynchronous invoke), because a Lambda is frozen as soon as it returns.
 */
import { z } from "zod";

export interface InstallJobRef {
  tenantId: string;
  taskId: string;
}

/** A job as it travels to whoever runs it: the install-worker's event on AWS, which validates with it. */
export const installJobPayloadSchema = z.object({
  tenantId: z.string().min(1),
  taskId: z.string().min(1),
});
export type InstallJobPayload = z.infer<typeof installJobPayloadSchema>;

export interface InstallQueue {
  enqueue(job: InstallJobRef): Promise<void>;
}
