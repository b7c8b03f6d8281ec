#!/usr/bin/env node
// The package's `bin`: runs the TypeScript CLI through tsx, resolved from this package, so the
// command works from any directory.
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
