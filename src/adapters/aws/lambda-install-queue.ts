/**
 * Install tasks on AWS: the management handler answers first, then the task runs in the
 * install-worker Lambda, started with an asynchronous invoke (Lambda queues the event and
 * retries it on function errors). Without a worker function (tests, a single process) the task
 * runs in this process instead.
 */
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import {
  type InstallJobPayload,
  type InstallJobRef,
  type InstallQueue,
  installJobPayloadSchema,
} from "../../ports/install-queue.js";
import { InProcessInstallQueue } from "../local/in-process-install-queue.js";
import { sharedLambdaClient } from "./clients.js";

export class LambdaInstallQueue implements InstallQueue {
  private readonly local: InProcessInstallQueue | undefined;

  constructor(
    private readonly functionName: string | undefined,
    run: (tenantId: string, taskId: string) => Promise<void>,
    private readonly lambda: () => LambdaClient = sharedLambdaClient,
  ) {
    this.local = functionName ? undefined : new InProcessInstallQueue(run);
  }

  async enqueue(job: InstallJobRef): Promise<void> {
    const payload: InstallJobPayload = installJobPayloadSchema.parse(job);
    if (this.local) return this.local.enqueue(payload);
    const out = await this.lambda().send(
      new InvokeCommand({
        FunctionName: this.functionName,
        InvocationType: "Event",
        Payload: new TextEncoder().encode(JSON.stringify(payload)),
      }),
    );
    // Lambda answers 202 once the event is queued; anything else means it was not.
    if (out.StatusCode !== 202) {
      throw new Error(`install worker ${this.functionName} did not accept task ${job.taskId}: HTTP ${out.StatusCode}`);
    }
  }

  /** Resolves when tasks run in this process have finished (no-op with a worker function). */
  async idle(): Promise<void> {
    await this.local?.idle();
  }
}
