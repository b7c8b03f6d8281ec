/**
 * Secret values (the daemon key, Dify's inner API key) from AWS Secrets Manager.
 *
 * Each secret is read once per process: a Lambda reads it on cold start and reuses it while
 * warm. Rotation therefore takes effect as execution environments are recycled, which is what
 * Lambda's own Secrets Manager extension does with its default TTL too. A failed read is not
 * cached, so the next call tries again.
 */
import {
  GetSecretValueCommand,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from "@aws-sdk/client-secrets-manager";
import { registerSecret } from "../../observability/redaction.js";

type Env = Record<string, string | undefined>;

/**
 * Built like the clients in clients.ts: default region and a bounded connection timeout; the SDK
 * itself honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_SECRETS_MANAGER.
 */
export function createSecretsManagerClient(
  overrides: SecretsManagerClientConfig = {},
  env: Env = process.env,
): SecretsManagerClient {
  return new SecretsManagerClient({
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
    requestHandler: { connectionTimeout: 5_000 },
    ...overrides,
  });
}

/** Reads secrets through one client, remembering each value for the life of the object. */
export class SecretCache {
  private readonly values = new Map<string, Promise<string>>();

  constructor(private readonly client: SecretsManagerClient) {}

  value(arn: string): Promise<string> {
    let value = this.values.get(arn);
    if (!value) {
      value = this.read(arn);
      this.values.set(arn, value);
      value.catch(() => this.values.delete(arn));
    }
    return value;
  }

  private async read(arn: string): Promise<string> {
    const out = await this.client.send(new GetSecretValueCommand({ SecretId: arn }));
    const value =
      out.SecretString ?? (out.SecretBinary !== undefined ? new TextDecoder().decode(out.SecretBinary) : undefined);
    if (value === undefined) throw new Error(`secret ${arn} has no value`);
    // Keys never reach a log line, whatever code would print them.
    registerSecret(value);
    return value;
  }
}

let shared: SecretCache | undefined;

/** A secret's current string value, read once per process. */
export function secretValue(arn: string): Promise<string> {
  shared ??= new SecretCache(createSecretsManagerClient());
  return shared.value(arn);
}
