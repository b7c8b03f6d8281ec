/**
 * cdk-nag (v3) acknowledgments with their reasons.
 *
 * cdk-nag reports every wildcard in an IAM policy as its own finding, named after the flattened
 * resource (e.g. `AwsSolutions-IAM5[Resource::<Bucket1234.Arn>/packages/*]`), and v3 only
 * acknowledges exact finding ids. `allowWildcards` lets the code that creates a wildcard document
 * it by pattern instead: an aspect runs cdk-nag's own IAM5 check on each policy below the scope and
 * acknowledges exactly the findings that match, with the reason given. Anything else still fails.
 */
import { Aspects, CfnResource, type IAspect, Validations } from "aws-cdk-lib";
import type { IGrantable } from "aws-cdk-lib/aws-iam";
import { rules } from "cdk-nag";
import { Construct, type IConstruct } from "constructs";

export interface Acknowledgment {
  /** cdk-nag rule id, e.g. "AwsSolutions-APIG2". */
  readonly id: string;
  /** Why the finding does not apply or is accepted. */
  readonly reason: string;
}

export interface WildcardAllowance {
  /** Matches a finding such as `Resource::arn:<AWS::Partition>:lambda:...:function:prefix*`. */
  readonly finding: RegExp;
  readonly reason: string;
}

/** Acknowledges rules on a construct and everything below it. */
export function acknowledge(scope: IConstruct, ...acknowledgments: Acknowledgment[]): void {
  for (const a of acknowledgments) {
    if (a.reason.trim().length < 20) throw new Error(`acknowledgment of ${a.id} needs a real reason`);
    Validations.of(scope).acknowledge({ id: a.id, reason: a.reason });
  }
}

const IAM5 = "AwsSolutions-IAM5";

class WildcardAcknowledgments implements IAspect {
  constructor(private readonly allowances: readonly WildcardAllowance[]) {}

  visit(node: IConstruct): void {
    if (!CfnResource.isCfnResource(node)) return;
    const result = rules.iam.IAMNoWildcardPermissions(node);
    if (!Array.isArray(result)) return;
    for (const finding of result) {
      const allowance = this.allowances.find((a) => a.finding.test(finding));
      if (allowance) Validations.of(node).acknowledge({ id: `${IAM5}[${finding}]`, reason: allowance.reason });
    }
  }
}

/** Documents the wildcards that policies below `scope` may contain; see the module comment. */
export function allowWildcards(scope: IConstruct, ...allowances: WildcardAllowance[]): void {
  for (const a of allowances) {
    if (a.finding.global || a.finding.sticky)
      throw new Error("allowWildcards: use a regular expression without g/y flags");
    if (a.reason.trim().length < 20) throw new Error(`wildcard allowance ${a.finding} needs a real reason`);
  }
  Aspects.of(scope).add(new WildcardAcknowledgments(allowances));
}

/** `allowWildcards` on the construct behind a grantee (a role, or a function's role). */
export function allowGranteeWildcards(grantee: IGrantable, ...allowances: WildcardAllowance[]): void {
  const principal = grantee.grantPrincipal;
  if (!Construct.isConstruct(principal))
    throw new Error("allowGranteeWildcards: the grantee's principal is not part of this app");
  allowWildcards(principal, ...allowances);
}

/**
 * One ARN segment as cdk-nag prints it: a literal, or a flattened reference such as `<AWS::Region>`.
 * For building `finding` patterns of ARNs made with `Stack.formatArn`.
 */
export const ARN_SEGMENT = "(?:<[^>]+>|[^:<>]+)";

/** Escapes text for use inside a regular expression. */
export const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
