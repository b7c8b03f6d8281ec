/**
 * The bucket holding plugin packages (`packages/`), extracted assets (`assets/`), the Lambda
 * code zips built for plugins (`plugin-code/`) and large plugin storage values (`plugin-storage/`). Private, encrypted, TLS-only, versioned, retained.
 */

import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { BLOB_PREFIXES } from "../../src/domain/blob-keys.js";
import { acknowledge, allowGranteeWildcards, literal } from "../nag.js";

export interface PackageBucketProps {
  /** @default RemovalPolicy.RETAIN — packages are the source of truth for installed plugins. */
  readonly removalPolicy?: RemovalPolicy;
  /** How long overwritten or deleted object versions are kept. @default 30 days */
  readonly noncurrentVersionRetention?: Duration;
}

/** Key prefixes, one per kind of object, so permissions can be scoped per prefix. */
export const PACKAGE_BUCKET_PREFIXES = BLOB_PREFIXES;

export interface ObjectAccess {
  /** Key prefixes (e.g. "packages/"); objects anywhere in the bucket when omitted. */
  readonly prefixes?: readonly string[];
  readonly read?: boolean;
  readonly write?: boolean;
  readonly delete?: boolean;
}

export class PackageBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: PackageBucketProps = {}) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, "Bucket", {
      versioned: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      lifecycleRules: [
        { noncurrentVersionExpiration: props.noncurrentVersionRetention ?? Duration.days(30) },
        { abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
    });
    acknowledge(this.bucket, {
      id: "AwsSolutions-S1",
      reason:
        "Every read and write goes through the daemon's own IAM roles and is logged by the handlers; " +
        "enable CloudTrail S3 data events if object-level audit is required, rather than a second log bucket per stack.",
    });
  }

  get bucketName(): string {
    return this.bucket.bucketName;
  }

  /**
   * Object permissions under the given prefixes. Readers also get s3:ListBucket on those prefixes:
   * without it S3 answers a missing key with 403 instead of 404, which the stores treat as "absent".
   */
  grantObjects(grantee: iam.IGrantable, access: ObjectAccess): void {
    const prefixes = access.prefixes ?? [""];
    const objects = prefixes.map((p) => this.bucket.arnForObjects(`${p}*`));
    const actions = [
      ...(access.read ? ["s3:GetObject"] : []),
      ...(access.write ? ["s3:PutObject"] : []),
      ...(access.delete ? ["s3:DeleteObject"] : []),
    ];
    if (actions.length === 0) throw new Error("PackageBucket.grantObjects: grant at least one of read, write, delete");
    iam.Grant.addToPrincipal({ grantee, actions, resourceArns: objects });
    if (access.prefixes) {
      const prefixPattern = access.prefixes.map(literal).join("|");
      const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as s3.CfnBucket);
      allowGranteeWildcards(grantee, {
        finding: new RegExp(`^Resource::<${literal(bucketId)}\\.Arn>/(${prefixPattern})\\*$`),
        reason:
          "Object access is limited to key prefixes of the daemon's own package bucket; keys are content-addressed " +
          "(plugin id, version, checksum) and only known at run time.",
      });
    }
    if (access.read) {
      grantee.grantPrincipal.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ["s3:ListBucket"],
          resources: [this.bucket.bucketArn],
          ...(access.prefixes ? { conditions: { StringLike: { "s3:prefix": prefixes.map((p) => `${p}*`) } } } : {}),
        }),
      );
    }
  }
}
