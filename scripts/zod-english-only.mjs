import { dirname, join } from "node:path";

/**
 * An esbuild plugin for the Lambda bundles (scripts/bundle.mjs) and the local daemon's
 * (scripts/build-local.mjs). zod's `z` namespace re-exports all ~50 message locales
 * (`z.locales`), which esbuild cannot tree-shake through the namespace object: ~280 KB per
 * bundle, source V8 keeps in the heap. The daemon uses the default English messages only, so the
 * locale barrel is narrowed to `en` (as webpack users do with moment's locales): the local
 * daemon idles 1.5 MiB smaller with it. `z.locales.en` keeps working; any other locale would be
 * undefined.
 * @type {import("esbuild").Plugin}
 */
export const zodEnglishOnly = {
  name: "zod-english-only",
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => {
      if (!/[\\/]node_modules[\\/]zod[\\/]/.test(args.importer)) return undefined;
      return { path: join(dirname(args.importer), "..", "locales", "index.js"), namespace: "zod-english-only" };
    });
    build.onLoad({ filter: /.*/, namespace: "zod-english-only" }, (args) => ({
      contents: 'export { default as en } from "./en.js";',
      resolveDir: dirname(args.path),
      loader: "js",
    }));
  },
};
