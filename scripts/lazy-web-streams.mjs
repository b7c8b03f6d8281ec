/**
 * esbuild plugin for the local daemon: @middy/core's `node:stream/web` import made lazy.
 *
 * middy's core imports `ReadableStream` from `node:stream/web` at load, for one `instanceof` in
 * its Lambda response-streaming path, which the local daemon never takes. Loading the module
 * (node's web streams with their compression and encoding parts) costs 1.1 MiB resident in a bare
 * node, 0.4-0.5 MiB in the daemon idle and under load (four scratch runs each way, docs/benchmarks.md).
 * Here the import becomes a class whose `instanceof` loads the real module when first asked.
 */
const LAZY = "lazy-web-streams";

export const lazyWebStreams = {
  name: LAZY,
  setup(build) {
    build.onResolve({ filter: /^node:stream\/web$/ }, (args) =>
      /[\\/]@middy[\\/]core[\\/]/.test(args.importer) ? { path: "stream/web", namespace: LAZY } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: LAZY }, () => ({
      contents: `export class ReadableStream {
  static [Symbol.hasInstance](value) {
    return value instanceof require("node:stream/web").ReadableStream;
  }
}`,
      loader: "js",
    }));
  },
};
