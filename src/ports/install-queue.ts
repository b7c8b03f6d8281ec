/**
 * Runs install tasks after the HTTP call that created them has answered. Locally the task runs
 * in the daemon's process; on AWS the management handler hands it to the install-worker Lambda
 * (an asynchronous invoke), because a Lambda is frozen as soon as it returns.
 */
export interface InstallJobRef {
  tenantId: string;
  taskId: string;
}

export interface InstallQueue {
  enqueue(job: InstallJobRef): Promise<void>;
}
