/**
 * How the daemon reaches Dify's inner API (`/inner/api/*`, used for backwards invocation and for
 * encrypting endpoint settings): its URL and the key Dify expects in `X-Inner-Api-Key`
 * (Dify: INNER_API_KEY_FOR_PLUGIN). The key is either an existing secret or generated here.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { acknowledge } from "../nag.js";

export interface DifyInnerApiProps {
  /** Dify API base URL reachable from Lambda, e.g. https://dify.example.com (no /inner/api suffix). */
  readonly url?: string;
  /** Complete ARN of an existing secret holding Dify's INNER_API_KEY_FOR_PLUGIN; generated when unset. */
  readonly apiKeySecretArn?: string;
}

/** Secrets Manager complete ARNs end with "-" and six random characters. */
const COMPLETE_SECRET_ARN = /^arn:[\w-]+:secretsmanager:[\w-]+:\d{12}:secret:.+-[A-Za-z0-9]{6}$/;

export class DifyInnerApi extends Construct {
  readonly url?: string;
  readonly apiKeySecret: secretsmanager.ISecret;
  /** True when the key was generated here and must be copied into Dify's configuration. */
  readonly apiKeyGenerated: boolean;

  constructor(scope: Construct, id: string, props: DifyInnerApiProps = {}) {
    super(scope, id);
    this.url = props.url;
    if (props.apiKeySecretArn) {
      if (!COMPLETE_SECRET_ARN.test(props.apiKeySecretArn)) {
        throw new Error(
          `DifyInnerApi: apiKeySecretArn must be a complete secret ARN (ending in -XXXXXX), got ${props.apiKeySecretArn}`,
        );
      }
      this.apiKeySecret = secretsmanager.Secret.fromSecretCompleteArn(this, "ApiKey", props.apiKeySecretArn);
      this.apiKeyGenerated = false;
    } else {
      const secret = new secretsmanager.Secret(this, "ApiKey", {
        description: "Key for Dify's inner API (Dify: INNER_API_KEY_FOR_PLUGIN, sent as X-Inner-Api-Key)",
        generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
        removalPolicy: RemovalPolicy.DESTROY,
      });
      acknowledge(secret, {
        id: "AwsSolutions-SMG4",
        reason:
          "The key must equal Dify's INNER_API_KEY_FOR_PLUGIN; automatic rotation would break backwards " +
          "invocation until Dify is reconfigured. Rotate by hand together with Dify (docs/deploy.md).",
      });
      this.apiKeySecret = secret;
      this.apiKeyGenerated = true;
    }
  }

  /** GetSecretValue on this secret only. */
  grantReadApiKey(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ["secretsmanager:GetSecretValue"],
      resourceArns: [this.apiKeySecret.secretArn],
    });
  }
}
