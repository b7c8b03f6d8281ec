/**
 * Savings the daemon puts into every plugin's Python, run before any plugin or SDK code: locally a
 * `.pth` file in the plugin's virtualenv (adapters/local/sdk-speedups.ts), on Lambda a
 * `sitecustomize` in the plugin layer that the bootstrap puts on its plugin's path. None changes
 * what a plugin computes; each skips work the SDK (dify_plugin 0.10.x) repeats at every start or
 * at every call:
 *
 * At start:
 * - `importlib.metadata.entry_points()` answered once per `sys.path`: gevent's
 *   `monkey.patch_all()`, which the SDK runs at import, asks for ~25 entry-point groups and each
 *   call re-reads every installed distribution's metadata (60 ms of CPU and 800 failed opens for
 *   a plain tool plugin).
 * - `yaml.safe_load` on LibYAML's parser (same SafeConstructor, same objects) when the installed
 *   PyYAML has it: the SDK parses every provider, tool and model declaration at start, 480 ms of
 *   pure-Python parsing for the OpenAI provider's 55 files against 58 ms with LibYAML.
 *
 * At every call:
 * - One pydantic `TypeAdapter` per type in the SDK modules that build a new one for every line
 *   they parse (the stdio and TCP readers for each request, the backwards-call reader for each
 *   answer, the OpenAI-compatible model base for each streamed chunk): building one generates a
 *   core schema, 6 % of an echo plugin's CPU.
 * - stdin read on gevent's hub (non-blocking descriptor, woken by the event loop) instead of
 *   `gevent.os.tp_read`, which hands every read to a native thread-pool worker and back: one
 *   thread handoff and a cross-thread wake-up per request.
 *
 * Measured on 2 cores: start-up CPU −4 % for the echo-tool fixture, −15 % for
 * langgenius/json_process, −17 % for comfyui, −23 % for the OpenAI provider; echo dispatch at
 * concurrency 1 from 2.6 to 1.9 ms median and 320 to 410 calls/s; a 300-chunk answer of the
 * official deepseek plugin (the SDK's OpenAI-compatible model) at 0.33–0.38× the plugin CPU it
 * takes under upstream's daemon (bench/llm-stream.ts).
 * Each fix is applied right after its module is first imported, so nothing is imported earlier
 * than the plugin would import it (gevent must patch threading and socket first), and a fix that
 * does not find what it expects leaves the module as it is.
 */

/** The module's name, the same in a virtualenv and in the layer. */
export const SDK_SPEEDUPS_MODULE = "_dify_daemon_speedups";

/** What earlier versions of the module were called. */
export const FORMER_SDK_SPEEDUPS_MODULES: readonly string[] = ["_dify_daemon_startup"];

export const SDK_SPEEDUPS_SOURCE = `"""Savings written by the plugin daemon; see src/adapters/sdk-speedups.ts."""
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


_ADAPTERS = {}


def _one_type_adapter_per_type(module):
    factory = module.TypeAdapter
    if hasattr(factory, "__wrapped__"):
        return

    def type_adapter(type_, *args, **kwargs):
        if args or kwargs:
            return factory(type_, *args, **kwargs)
        try:
            found = _ADAPTERS.get(type_)
        except TypeError:  # an unhashable type: built each time, as before
            return factory(type_)
        if found is None:
            found = _ADAPTERS[type_] = factory(type_)
        return found

    type_adapter.__wrapped__ = factory
    module.TypeAdapter = type_adapter


def _stdin_read_on_the_hub(module):
    from gevent import monkey

    reader = module.StdioRequestReader
    if not monkey.is_module_patched("threading") or not hasattr(reader, "_read_async"):
        return
    import fcntl
    import os

    import gevent
    from gevent.os import nb_read

    fd = sys.stdin.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def _read_async(self):
        data = nb_read(fd, 65536)
        if not data:
            # End of input: the SDK's loop asks again at once; give the other greenlets (the
            # parent-alive check that ends the process) the time tp_read's round trip gave them.
            gevent.sleep(0.05)
        return data

    _read_async.__wrapped__ = reader._read_async
    reader._read_async = _read_async


def _stdio_reader(module):
    _one_type_adapter_per_type(module)
    _stdin_read_on_the_hub(module)


# entry_points() returns a selectable EntryPoints from Python 3.12 on.
_FIXES = {
    "yaml": _libyaml_safe_load,
    "dify_plugin.core.server.stdio.request_reader": _stdio_reader,
    "dify_plugin.core.server.tcp.request_reader": _one_type_adapter_per_type,
    "dify_plugin.core.runtime": _one_type_adapter_per_type,
    "dify_plugin.interfaces.model.openai_compatible.llm": _one_type_adapter_per_type,
}
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
