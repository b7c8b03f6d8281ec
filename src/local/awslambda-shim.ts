/**
 * The part of the Lambda Node.js runtime that streaming handlers use (`awslambda` global:
 * streamifyResponse and HttpResponseStream), provided in the local daemon so the very same
 * handler modules run there. Import this before any handler module.
 */
import type { Writable } from "node:stream";

/** A response stream whose status line and headers are sent with the first body bytes. */
export interface LocalResponseStream extends Writable {
  setPrelude(prelude: { statusCode?: number; headers?: Record<string, string> }): void;
}

interface AwsLambdaGlobal {
  streamifyResponse: <T>(handler: T) => T;
  HttpResponseStream: {
    from(
      stream: LocalResponseStream,
      prelude: { statusCode?: number; headers?: Record<string, string> },
    ): LocalResponseStream;
  };
}

const g = globalThis as unknown as { awslambda?: Partial<AwsLambdaGlobal> };

// Fill in each member on its own: the AWS SDK may already have set `awslambda = {}` when it loaded.
const awslambda = (g.awslambda ??= {});
awslambda.streamifyResponse ??= (handler) => handler;
awslambda.HttpResponseStream ??= {
  from(stream, prelude) {
    stream.setPrelude(prelude);
    return stream;
  },
};
