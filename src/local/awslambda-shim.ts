/**
 * The part of the Lambda Node.js runtime that streaming handlers use (`awslambda` global:
 * streamifyResponse and HttpResponseStream), provided in the local daemon so the very same
 * handler modules run there. Import this before any handler module.
 */
import { Writable } from "node:stream";

/** A response stream whose status line and headers are sent with the first body bytes. */
export interface LocalResponseStream extends Writable {
  setPrelude(prelude: { statusCode?: number; headers?: Record<string, string> }): void;
}

interface AwsLambdaGlobal {
  streamifyResponse: <T>(handler: T) => T;
  HttpResponseStream: {
    from(stream: LocalResponseStream, prelude: { statusCode?: number; headers?: Record<string, string> }): LocalResponseStream;
  };
}

const g = globalThis as unknown as { awslambda?: AwsLambdaGlobal };

g.awslambda ??= {
  streamifyResponse: (handler) => handler,
  HttpResponseStream: {
    from(stream, prelude) {
      stream.setPrelude(prelude);
      return stream;
    },
  },
};
