/**
 * The daemon key: the shared secret Dify sends as `X-Api-Key` (Dify's PLUGIN_DAEMON_KEY). Generated
 * at deploy time and kept in Secrets Manager; handlers read it by ARN and compare it themselves
 * (API Gateway API keys are deliberately not used: they would claim the same header).
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { acknowledge } from "../nag.js";

export interface DaemonKeyProps {
  /** @default 48 */
  readonly length?: number;
  /** @default RemovalPolicy.DESTROY — a new deployment generates a new key. */
  readonly removalPolicy?: RemovalPolicy;
}

export class DaemonKey extends Construct {
  readonly secret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: DaemonKeyProps = {}) {
    super(scope, id);
    this.secret = new secretsmanager.Secret(this, "Secret", {
      description: "Dify plugin daemon key (Dify: PLUGIN_DAEMON_KEY, sent as X-Api-Key)",
      // Alphanumeric only: the key travels in an HTTP header and in .env files.
      generateSecretString: { passwordLength: props.length ?? 48, excludePunctuation: true, includeSpace: false },
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
    });
    acknowledge(this.secret, {
      id: "AwsSolutions-SMG4",
      reason:
        "The key is shared with Dify's configuration (PLUGIN_DAEMON_KEY); automatic rotation would break Dify " +
        "until its configuration is updated. Rotate by hand: put a new value, then update Dify (docs/deploy.md).",
    });
  }

  get secretArn(): string {
    return this.secret.secretArn;
  }

  /** GetSecretValue on this secret only. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ["secretsmanager:GetSecretValue"],
      resourceArns: [this.secret.secretArn],
    });
  }
}
