import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createS3Client } from "../../src/adapters/aws/clients.js";
import { S3BlobStore } from "../../src/adapters/aws/s3-blob-store.js";
import {
  type AwsTestEndpoint,
  awsTestEndpoint,
  createTestBucket,
  uniqueResourceName,
} from "../support/aws-resources.js";
import { blobStoreContract } from "./blob-store.contract.js";

let endpoint: AwsTestEndpoint;
let client: S3Client;
let store: S3BlobStore;
const bucket = uniqueResourceName("packages");

beforeAll(async () => {
  endpoint = await awsTestEndpoint();
  client = createS3Client(endpoint.clientConfig);
  await createTestBucket(client, bucket);
  store = new S3BlobStore({ bucket, prefix: "blobs", client });
});

afterEach(() => {
  vi.unstubAllEnvs();
});

afterAll(async () => {
  client?.destroy();
  await endpoint?.release();
});

describe("S3BlobStore", () => {
  blobStoreContract(() => store);

  it("writes objects under its prefix, so stores sharing a bucket do not see each other", async () => {
    const other = new S3BlobStore({ bucket, prefix: "other/", client });
    await store.put("shared-name", new TextEncoder().encode("mine"));
    expect(await other.get("shared-name")).toBeUndefined();
    expect(await other.exists("shared-name")).toBe(false);

    const raw = await client.send(new GetObjectCommand({ Bucket: bucket, Key: "blobs/shared-name" }));
    expect(await raw.Body?.transformToString()).toBe("mine");
  });

  it("reaches the endpoint named by AWS_ENDPOINT_URL alone, path-style, with no region set", async () => {
    // A host name, not an IP: the SDK would address the bucket as a virtual host there.
    vi.stubEnv("AWS_ENDPOINT_URL", endpoint.clientConfig.endpoint.replace("127.0.0.1", "localhost"));
    vi.stubEnv("AWS_ACCESS_KEY_ID", "test");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test");
    vi.stubEnv("AWS_REGION", undefined);
    vi.stubEnv("AWS_DEFAULT_REGION", undefined);
    const fromEnvironment = createS3Client();
    try {
      expect(await fromEnvironment.config.region()).toBe("us-east-1");
      const viaEnvironment = new S3BlobStore({ bucket, prefix: "env", client: fromEnvironment });
      await viaEnvironment.put("configured", new TextEncoder().encode("by environment"));
      const raw = await client.send(new GetObjectCommand({ Bucket: bucket, Key: "env/configured" }));
      expect(await raw.Body?.transformToString()).toBe("by environment");
    } finally {
      fromEnvironment.destroy();
    }
  });

  it("fails loudly when the bucket does not exist instead of reporting a missing key", async () => {
    const lost = new S3BlobStore({ bucket: uniqueResourceName("missing"), client });
    await expect(lost.get("anything")).rejects.toThrow(/bucket/i);
  });
});
