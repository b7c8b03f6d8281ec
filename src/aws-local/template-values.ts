/**
 * CloudFormation's part in a local deployment: the physical names it gives resources and the
 * intrinsic functions the daemon's template uses (Ref, Fn::GetAtt, Fn::Join, Fn::Sub,
 * Fn::Select, Fn::Split), resolved against those names.
 */
import { randomBytes } from "node:crypto";
import type { TemplateResource } from "./stack-template.js";

export const REGION = "us-east-1";
export const ACCOUNT = "123456789012";

export interface PhysicalResource {
  /** What `Ref` returns. */
  ref: string;
  /** What `Fn::GetAtt` returns, by attribute. */
  attributes: Record<string, string>;
}

const suffix = (n: number) => randomBytes(n).toString("hex").toUpperCase().slice(0, n);

/** Names as CloudFormation makes them up: `<stack>-<logical id>-<random>`, within each service's limits. */
export function physicalResource(stackName: string, logicalId: string, resource: TemplateResource): PhysicalResource {
  const props = resource.Properties ?? {};
  const generated = (max: number) => `${`${stackName}-${logicalId}`.slice(0, max - 13)}-${suffix(12)}`;
  switch (resource.Type) {
    case "AWS::DynamoDB::Table": {
      const name = (props.TableName as string | undefined) ?? generated(255);
      return { ref: name, attributes: { Arn: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}` } };
    }
    case "AWS::S3::Bucket": {
      const name = (props.BucketName as string | undefined) ?? generated(63).toLowerCase();
      return { ref: name, attributes: { Arn: `arn:aws:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } };
    }
    case "AWS::SecretsManager::Secret": {
      const name = (props.Name as string | undefined) ?? `${logicalId}-${suffix(12)}`;
      // The real ARN (with Secrets Manager's own suffix) replaces this once the secret exists.
      return { ref: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}`, attributes: { Name: name } };
    }
    case "AWS::Lambda::Function": {
      const name = (props.FunctionName as string | undefined) ?? generated(64);
      return { ref: name, attributes: { Arn: `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${name}` } };
    }
    case "AWS::Lambda::LayerVersion": {
      const name = (props.LayerName as string | undefined) ?? `${stackName}-${logicalId}`.slice(0, 100);
      return { ref: `arn:aws:lambda:${REGION}:${ACCOUNT}:layer:${name}:1`, attributes: {} };
    }
    case "AWS::IAM::Role": {
      const name = (props.RoleName as string | undefined) ?? generated(64);
      return { ref: name, attributes: { Arn: `arn:aws:iam::${ACCOUNT}:role/${name}`, RoleId: `AROA${suffix(16)}` } };
    }
    case "AWS::ApiGateway::RestApi":
      return { ref: randomBytes(5).toString("hex"), attributes: { RootResourceId: `root-${logicalId}` } };
    default:
      return {
        ref: `${logicalId}-${suffix(8)}`,
        attributes: { Arn: `arn:aws:local:${REGION}:${ACCOUNT}:${logicalId}` },
      };
  }
}

const PSEUDO: Record<string, string> = {
  "AWS::Region": REGION,
  "AWS::AccountId": ACCOUNT,
  "AWS::Partition": "aws",
  "AWS::URLSuffix": "amazonaws.com",
  "AWS::NoValue": "",
};

/** Resolves every intrinsic function in a template value. */
export function resolveValue(
  value: unknown,
  resources: ReadonlyMap<string, PhysicalResource>,
  stackName: string,
): unknown {
  const again = (v: unknown) => resolveValue(v, resources, stackName);
  if (Array.isArray(value)) return value.map(again);
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 1) {
    const [fn, arg] = entries[0]!;
    switch (fn) {
      case "Ref": {
        const name = String(arg);
        if (name === "AWS::StackName") return stackName;
        if (name in PSEUDO) return PSEUDO[name];
        const found = resources.get(name);
        if (!found) throw new Error(`Ref to unknown resource ${name}`);
        return found.ref;
      }
      case "Fn::GetAtt": {
        const [id, attribute] = (Array.isArray(arg) ? arg : String(arg).split(".")) as [string, string];
        const found = resources.get(id)?.attributes[attribute];
        if (found === undefined) throw new Error(`Fn::GetAtt ${id}.${attribute} is not known here`);
        return found;
      }
      case "Fn::Join": {
        const [separator, parts] = arg as [string, unknown[]];
        return (again(parts) as unknown[]).map(String).join(separator);
      }
      case "Fn::Select": {
        const [index, list] = arg as [number | string, unknown];
        return (again(list) as unknown[])[Number(again(index))];
      }
      case "Fn::Split": {
        const [separator, text] = arg as [string, unknown];
        return String(again(text)).split(separator);
      }
      case "Fn::Sub": {
        const [text, variables] = (Array.isArray(arg) ? arg : [arg, {}]) as [string, Record<string, unknown>];
        return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
          if (name in variables) return String(again(variables[name]));
          const [id, attribute] = name.split(".");
          return String(again(attribute ? { "Fn::GetAtt": [id, attribute] } : { Ref: id }));
        });
      }
    }
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, again(v)]));
}
