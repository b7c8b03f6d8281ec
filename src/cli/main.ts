#!/usr/bin/env node
/**
 * The operator CLI: `dify-plugin-daemon-aws <command>`. Commands live in ./commands, one module
 * each; ./program.ts puts them together.
 */
// The daemon's logger writes to stdout, which belongs to the command's output here: only errors,
// unless LOG_LEVEL asks for more. Set before any module that builds the logger is loaded.
process.env.LOG_LEVEL ??= "error";

const { buildProgram } = await import("./program.js");
await buildProgram().parseAsync(process.argv);
