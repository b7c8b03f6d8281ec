/**
 * The Go daemon's plugin storage on S3 (PLUGIN_STORAGE_TYPE=aws_s3): objects read through our
 * S3 adapter, listed with ListObjectsV2. Keys are the storage paths themselves
 * (langgenius/dify-cloud-kit oss/s3/s3.go). Only read, never written.
 */
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { createS3Client } from "../../adapters/aws/clients.js";
import { S3BlobStore } from "../../adapters/aws/s3-blob-store.js";
import type { GoStorageSettings } from "../go-daemon-settings.js";
import type { GoStorage } from "./ports.js";

type S3Settings = Extract<GoStorageSettings, { type: "aws_s3" }>;

export class S3GoStorage implements GoStorage {
  readonly description: string;
  private readonly client: S3Client;
  private readonly objects: S3BlobStore;

  constructor(private readonly settings: S3Settings) {
    this.description = `bucket s3://${settings.bucket}${settings.endpoint ? ` at ${settings.endpoint}` : ""}`;
    // The Go daemon's own S3 settings (S3_ENDPOINT, AWS_ACCESS_KEY, ...) when given; else the SDK's usual chain.
    this.client = createS3Client({
      ...(settings.endpoint && { endpoint: settings.endpoint, forcePathStyle: settings.pathStyle }),
      ...(settings.region && { region: settings.region }),
      ...(settings.credentials && { credentials: settings.credentials }),
    });
    this.objects = new S3BlobStore({ bucket: settings.bucket, client: this.client });
  }

  read(key: string): Promise<Uint8Array | undefined> {
    return this.objects.get(key);
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) if (object.Key && !object.Key.endsWith("/")) keys.push(object.Key);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }
}
