/**
 * The daemon's one DynamoDB table (single-table design): installations, packages, install tasks,
 * endpoints, sessions. Keys are `pk`/`sk` strings, one GSI `gsi1` (`gsi1pk`/`gsi1sk`) for lookups
 * by secondary id, and a `ttl` attribute so short-lived items (tasks, sessions) expire by themselves.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";

export interface MetadataTableProps {
  /** @default RemovalPolicy.RETAIN — installations outlive the stack unless you delete them on purpose. */
  readonly removalPolicy?: RemovalPolicy;
  /** @default true */
  readonly deletionProtection?: boolean;
}

/** Item-level actions the stores use; transactions are authorised per item by these. */
const READ_ACTIONS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"];
const WRITE_ACTIONS = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"];

export const METADATA_INDEX_NAME = "gsi1";

export class MetadataTable extends Construct {
  readonly table: dynamodb.Table;

  constructor(scope: Construct, id: string, props: MetadataTableProps = {}) {
    super(scope, id);
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: "ttl",
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: METADATA_INDEX_NAME,
      partitionKey: { name: "gsi1pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "gsi1sk", type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
  }

  get tableName(): string {
    return this.table.tableName;
  }

  /** The table and its one index, named exactly (no `index/*` wildcard). */
  private resources(): string[] {
    return [this.table.tableArn, `${this.table.tableArn}/index/${METADATA_INDEX_NAME}`];
  }

  grantReadData(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({ grantee, actions: READ_ACTIONS, resourceArns: this.resources() });
  }

  grantReadWriteData(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...READ_ACTIONS, ...WRITE_ACTIONS],
      resourceArns: this.resources(),
    });
  }
}
