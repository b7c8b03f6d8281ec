/**
 * BlobStore on an S3 bucket, optionally under a key prefix (several stores can share a bucket).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import type { BlobStore } from "../../ports/blob-store.js";
import { sharedS3Client } from "./clients.js";

export interface S3BlobStoreOptions {
  bucket: string;
  /** Prepended to every key; a "/" is added when it does not end with one. */
  prefix?: string;
  client?: S3Client;
}

export class S3BlobStore implements BlobStore {
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly client: () => S3Client;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    const prefix = options.prefix ?? "";
    this.prefix = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
    // Resolved on first call so constructing the store at module load costs nothing.
    this.client = options.client ? () => options.client as S3Client : sharedS3Client;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    await this.client().send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.objectKey(key),
        Body: body,
        ContentLength: body.byteLength,
      }),
    );
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    try {
      const response = await this.client().send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
      );
      if (!response.Body) return new Uint8Array();
      return await response.Body.transformToByteArray();
    } catch (err) {
      if (isMissingObject(err)) return undefined;
      throw err;
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client().send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return true;
    } catch (err) {
      if (isMissingObject(err)) return false;
      throw err;
    }
  }

  /** S3's DeleteObject already succeeds for a missing key. */
  async delete(key: string): Promise<void> {
    await this.client().send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
  }

  private objectKey(key: string): string {
    if (key === "") throw new TypeError("blob key must not be empty");
    return this.prefix + key;
  }
}

/**
 * GetObject reports a missing key as NoSuchKey; HeadObject has no body, so only its bare 404
 * ("NotFound") tells. GetObject's NoSuchBucket (also a 404) is a configuration error, not a miss.
 */
function isMissingObject(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === "NoSuchKey" || err.name === "NotFound") return true;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 404 && err.name !== "NoSuchBucket";
}
