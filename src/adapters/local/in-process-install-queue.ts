/** Runs install tasks in the local daemon's own process, in the background. */
import { logger } from "../../logger.js";
import type { InstallJobRef, InstallQueue } from "../../ports/install-queue.js";

export class InProcessInstallQueue implements InstallQueue {
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly run: (tenantId: string, taskId: string) => Promise<void>) {}

  async enqueue(job: InstallJobRef): Promise<void> {
    const work = this.run(job.tenantId, job.taskId)
      .catch((err: unknown) => logger.error({ err, ...job }, "install task crashed"))
      .finally(() => this.running.delete(work));
    this.running.add(work);
  }

  /** Resolves when every task started so far has finished (shutdown, tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
  }
}
