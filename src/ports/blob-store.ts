/**
 * Bytes by key: plugin packages, extracted assets, large plugin-storage values.
 * Adapters: S3 bucket (AWS) and a local directory (local daemon).
 */
export interface BlobStore {
  put(key: string, body: Uint8Array): Promise<void>;
  /** Undefined when the key does not exist. */
  get(key: string): Promise<Uint8Array | undefined>;
  exists(key: string): Promise<boolean>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
}
