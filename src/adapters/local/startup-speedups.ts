/**
 * Two start-up savings the local daemon puts into every plugin's virtualenv, as a `.pth` file
 * that Python runs before any plugin or SDK code. Neither changes what a plugin computes; both
 * skip work the SDK repeats at every start:
 *
 * - `importlib.metadata.entry_points()` answered once per `sys.path`: gevent's
 *   `monkey.patch_all()`, which the SDK runs at import, asks for ~25 entry-point groups and each
 *   call re-reads every installed distribution's metadata (60 ms of CPU and 800 failed opens for
 *   a plain tool plugin).
 * - `yaml.safe_load` on LibYAML's parser (same SafeConstructor, same objects) when the installed
 *   PyYAML has it: the SDK parses every provider, tool and model declaration at start, 480 ms of
 *   pure-Python parsing for the OpenAI provider's 55 files against 58 ms with LibYAML.
 *
 * Measured with CPU time, interleaved with and without, on 2 cores: −4 % for the echo-tool
 * fixture, −15 % for langgenius/json_process, −17 % for comfyui, −23 % for the OpenAI provider.
 * Each fix is applied right after its module is first imported, so nothing is imported earlier
 * than the plugin would import it (gevent must patch threading and socket first). Installed at
 * spawn, not only at install, so plugins installed before this existed get it too.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const MODULE = "_dify_daemon_startup";

const SOURCE = `"""Start-up savings written by the plugin daemon; see its startup-speedups module."""
import sys


def _entry_points_once(metadata):
    original = metadata.entry_points
    found_for = {}

    def entry_points(**params):
        key = tuple(sys.path)
        found = found_for.get(key)
        if found is None:
            found = found_for[key] = original()
        return found.select(**params) if params else found

    entry_points.__wrapped__ = original
    metadata.entry_points = entry_points


def _libyaml_safe_load(yaml):
    if not getattr(yaml, "__with_libyaml__", False):
        return
    loader = yaml.CSafeLoader

    def safe_load(stream):
        return yaml.load(stream, loader)

    def safe_load_all(stream):
        return yaml.load_all(stream, loader)

    safe_load.__wrapped__, safe_load_all.__wrapped__ = yaml.safe_load, yaml.safe_load_all
    yaml.safe_load, yaml.safe_load_all = safe_load, safe_load_all


# entry_points() returns a selectable EntryPoints from Python 3.12 on.
_FIXES = {"yaml": _libyaml_safe_load}
if sys.version_info >= (3, 12):
    _FIXES["importlib.metadata"] = _entry_points_once


class _AfterImport:
    """Finds nothing itself: wraps the real loader of the modules above to fix them once loaded."""

    def find_spec(self, name, path=None, target=None):
        fix = _FIXES.get(name)
        if fix is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        load = getattr(spec.loader, "exec_module", None)
        if load is None:
            return spec

        def load_then_fix(module):
            try:
                load(module)
            finally:
                _FIXES.pop(name, None)
                if not _FIXES and self in sys.meta_path:
                    sys.meta_path.remove(self)
            try:
                fix(module)
            except Exception:  # a saving must never break a plugin
                pass

        spec.loader.exec_module = load_then_fix
        return spec


sys.meta_path.insert(0, _AfterImport())
`;

/** Writes the savings into a plugin's virtualenv unless this version is there already; never fails a start. */
export function ensureStartupSpeedups(pluginDir: string): void {
  try {
    for (const sitePackages of sitePackagesDirs(join(pluginDir, ".venv"))) {
      const pth = join(sitePackages, `${MODULE}.pth`);
      const module = join(sitePackages, `${MODULE}.py`);
      if (existsSync(pth) && existsSync(module) && readFileSync(module, "utf8") === SOURCE) continue;
      writeFileSync(module, SOURCE);
      // Written last: a .pth naming a module that is not there yet would print an error at start.
      writeFileSync(pth, `import ${MODULE}\n`);
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
