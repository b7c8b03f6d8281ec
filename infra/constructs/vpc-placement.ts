/**
 * Optional VPC placement, for a Dify reachable only privately (ECS in private subnets, say): the
 * handlers that call Dify's inner API (management, public-endpoint, backwards-invocation) and, on
 * their own setting, the plugin functions the daemon creates.
 *
 * Subnets and security groups come from context as ids: no VPC lookup, so `cdk synth` needs no
 * AWS credentials. What a function in a VPC needs, from
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html:
 * - its execution role may create and delete network interfaces (the actions of the managed
 *   policy AWSLambdaVPCAccessExecutionRole; the Describe* ones only work on `"Resource": "*"`);
 * - whoever creates or updates a function with a VPC configuration may describe security groups,
 *   subnets and VPCs (the management and install-worker handlers, for plugin functions);
 * - a route to everything it calls: DynamoDB and S3 (gateway endpoints), Secrets Manager and
 *   Lambda (interface endpoints), and the marketplace, plugins' APIs and the daemon's own API URL
 *   (a NAT gateway). docs/deploy.md lists them per handler.
 */
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type { Construct } from "constructs";
import { allowWildcards } from "../nag.js";
import type { VpcPlacement } from "../settings.js";

/** AWSLambdaVPCAccessExecutionRole's EC2 actions, as an inline statement instead of a managed policy. */
export const VPC_EXECUTION_ACTIONS = [
  "ec2:CreateNetworkInterface",
  "ec2:DescribeNetworkInterfaces",
  "ec2:DescribeSubnets",
  "ec2:DeleteNetworkInterface",
  "ec2:AssignPrivateIpAddresses",
  "ec2:UnassignPrivateIpAddresses",
];

/** What Lambda checks with the caller's permissions when a function is given a VPC configuration. */
export const VPC_CONFIGURATION_ACTIONS = ["ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs"];

const ANY_RESOURCE = /^Resource::\*$/;

/** Puts a handler in the VPC; its role may manage the function's network interfaces first. */
export function placeInVpc(fn: lambda.Function, placement: VpcPlacement): void {
  const cfn = fn.node.defaultChild as lambda.CfnFunction;
  cfn.vpcConfig = { subnetIds: [...placement.subnetIds], securityGroupIds: [...placement.securityGroupIds] };
  const policy = networkInterfacesPolicy(fn, "VpcAccess", fn.role!);
  // Lambda creates the interfaces while CloudFormation creates the function: the grant comes first.
  cfn.node.addDependency(policy);
}

/** The execution role of functions created later (plugin functions) may manage their network interfaces. */
export function allowNetworkInterfaces(scope: Construct, role: iam.IRole): iam.Policy {
  return networkInterfacesPolicy(scope, "PluginVpcAccess", role);
}

/** A handler that creates functions in the VPC may describe what it names. */
export function allowVpcConfiguration(scope: Construct, id: string, grantee: iam.IGrantable): void {
  const role = grantee.grantPrincipal as iam.IRole;
  const policy = new iam.Policy(scope, id, {
    roles: [role],
    statements: [new iam.PolicyStatement({ actions: VPC_CONFIGURATION_ACTIONS, resources: ["*"] })],
  });
  allowWildcards(policy, {
    finding: ANY_RESOURCE,
    reason:
      "EC2 Describe* actions support no resource-level permissions; Lambda checks them with the caller's permissions when a plugin function gets a VPC configuration.",
  });
}

function networkInterfacesPolicy(scope: Construct, id: string, role: iam.IRole): iam.Policy {
  const policy = new iam.Policy(scope, id, {
    roles: [role],
    statements: [new iam.PolicyStatement({ actions: VPC_EXECUTION_ACTIONS, resources: ["*"] })],
  });
  allowWildcards(policy, {
    finding: ANY_RESOURCE,
    reason:
      "The actions of AWS's AWSLambdaVPCAccessExecutionRole, inline: Lambda creates the function's network interfaces in the " +
      "configured subnets, and ec2:DescribeNetworkInterfaces only works on all resources.",
  });
  return policy;
}
