/**
 * The SDK savings (../sdk-speedups.ts) in a local plugin's virtualenv: the module and a `.pth` file
 * that imports it at every start of the plugin's Python. Written at spawn, not only at install, so
 * plugins installed before a saving existed get it too.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FORMER_SDK_SPEEDUPS_MODULES, SDK_SPEEDUPS_MODULE, SDK_SPEEDUPS_SOURCE } from "../sdk-speedups.js";

/** Writes the savings into a plugin's virtualenv unless this version is there already; never fails a start. */
export function ensureSdkSpeedups(pluginDir: string): void {
  try {
    for (const sitePackages of sitePackagesDirs(join(pluginDir, ".venv"))) {
      // An earlier version goes first, its .pth before its module: a .pth naming a missing module prints an error at start.
      for (const former of FORMER_SDK_SPEEDUPS_MODULES)
        for (const ext of [".pth", ".py"]) rmSync(join(sitePackages, former + ext), { force: true });
      const pth = join(sitePackages, `${SDK_SPEEDUPS_MODULE}.pth`);
      const module = join(sitePackages, `${SDK_SPEEDUPS_MODULE}.py`);
      if (existsSync(pth) && existsSync(module) && readFileSync(module, "utf8") === SDK_SPEEDUPS_SOURCE) continue;
      writeFileSync(module, SDK_SPEEDUPS_SOURCE);
      // Written last: a .pth naming a module that is not there yet would print an error at start.
      writeFileSync(pth, `import ${SDK_SPEEDUPS_MODULE}\n`);
    }
  } catch {
    // A read-only or unusual virtualenv starts as it is.
  }
}

function sitePackagesDirs(venv: string): string[] {
  const lib = join(venv, "lib");
  if (!existsSync(lib)) return [];
  return readdirSync(lib)
    .filter((name) => name.startsWith("python"))
    .map((name) => join(lib, name, "site-packages"))
    .filter((dir) => existsSync(dir));
}
