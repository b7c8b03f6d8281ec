/**
 * The plugin builder Lambda (layers/plugin-builder): turns a stored .difypkg into a Lambda code
 * zip with the plugin's requirements installed for the target Python and architecture. Called
 * synchronously: the install task waits for it, and the function's own 15-minute limit bounds it.
 */
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import { z } from "zod";
import { internalError } from "../../domain/errors.js";
import type { LambdaArch } from "./lambda-function-spec.js";

export interface BuildRequest {
  bucket: string;
  package_key: string;
  output_key: string;
  arch: LambdaArch;
  /** "3.12" / "3.13": the runtime the function will use, not the manifest's request. */
  python_version: string;
  /** What the code may take unzipped: Lambda's 250 MB less the layer. The builder fails a bigger build, naming its largest packages. */
  max_unzipped_bytes?: number;
  /** Package index for the plugin's dependencies (PIP_MIRROR_URL); PyPI when unset. */
  index_url?: string;
}

export interface BuiltCode {
  codeKey: string;
  sizeBytes: number;
  /** Undefined from a builder that does not report it. */
  unzippedBytes: number | undefined;
  logTail: string;
}

const buildResult = z.union([
  z.object({
    code_key: z.string().min(1),
    size_bytes: z.number().nonnegative(),
    unzipped_bytes: z.number().nonnegative().nullish(),
    log_tail: z.string().nullish(),
  }),
  z.object({ error: z.string(), log_tail: z.string().nullish() }),
]);

/** What Lambda returns as the payload when the builder itself crashed or timed out. */
const functionError = z.object({ errorType: z.string().optional(), errorMessage: z.string().optional() }).loose();

export async function buildPluginCode(
  lambda: LambdaClient,
  builderFunction: string,
  request: BuildRequest,
): Promise<BuiltCode> {
  const out = await lambda.send(
    new InvokeCommand({
      FunctionName: builderFunction,
      InvocationType: "RequestResponse",
      Payload: new TextEncoder().encode(JSON.stringify(request)),
    }),
  );
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : "";
  const json = parseJson(text);
  if (out.FunctionError) {
    const failure = functionError.safeParse(json);
    const detail = failure.success
      ? [failure.data.errorType, failure.data.errorMessage].filter(Boolean).join(": ")
      : text.slice(0, 1000);
    throw internalError(`plugin build failed: the builder crashed (${out.FunctionError}): ${detail || "no details"}`);
  }
  const result = buildResult.safeParse(json);
  if (!result.success) throw internalError(`plugin build failed: unexpected builder answer: ${text.slice(0, 500)}`);
  if ("error" in result.data) {
    const tail = result.data.log_tail ? `\n${result.data.log_tail}` : "";
    throw internalError(`plugin build failed: ${result.data.error}${tail}`);
  }
  return {
    codeKey: result.data.code_key,
    sizeBytes: result.data.size_bytes,
    unzippedBytes: result.data.unzipped_bytes ?? undefined,
    logTail: result.data.log_tail ?? "",
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
