/**
 * Vitest global setup: makes sure the Python toolchain plugins need exists (CPython >= 3.12
 * and uv, built or found by scripts/python-toolchain.sh) and hands the paths to the tests.
 * It also starts one AWS-compatible server (moto) for the run; test workers are forked after
 * this and inherit its endpoint through AWS_ENDPOINT_URL. Every temporary file of the run (the
 * tests', their daemons', plugins' and synthesized stacks') goes under one directory, TMPDIR for
 * the workers and everything they start, removed when the run ends.
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { TestProject } from "vitest/node";
import { startAwsEmulator } from "../../src/aws-local/moto-server.js";

const run = promisify(execFile);
const toolchain = fileURLToPath(new URL("../../scripts/python-toolchain.sh", import.meta.url));

declare module "vitest" {
  export interface ProvidedContext {
    pythonPath: string;
    uvPath: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runTmp = mkdtempSync(join(tmpdir(), "daemon-tests-"));
  // Traversable by other users: the PostgreSQL tests run the server as `postgres` in a directory below.
  chmodSync(runTmp, 0o711);
  process.env.TMPDIR = runTmp;
  const options = { maxBuffer: 16 * 1024 * 1024, timeout: 20 * 60_000 };
  const [python, uv, aws] = await Promise.all([
    run("bash", [toolchain, "python"], options).then((r) => r.stdout.trim()),
    run("bash", [toolchain, "uv"], options).then((r) => r.stdout.trim()),
    startAwsEmulator(),
  ]);
  project.provide("pythonPath", python);
  project.provide("uvPath", uv);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: aws.endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_REGION: "us-east-1",
  });
  return async () => {
    await aws.stop();
    rmSync(runTmp, { recursive: true, force: true, maxRetries: 5 });
  };
}
