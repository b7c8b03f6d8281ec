"""Entry point: `python -m dify_lambda_bootstrap`.

Environment:
  AWS_LAMBDA_RUNTIME_API        host:port of the Runtime API (required)
  LAMBDA_TASK_ROOT              plugin code directory (default: current directory)
  DIFY_PLUGIN_PYTHON            Python executable for the plugin (default: this interpreter)
  DIFY_PLUGIN_ENTRYPOINT        module to run (default: manifest meta.runner.entrypoint, else "main")
  DIFY_PLUGIN_STARTUP_TIMEOUT   seconds to wait for the plugin's first heartbeat (default 120)
  DIFY_PLUGIN_DEFAULT_TIMEOUT   session timeout when neither the event nor Lambda gives one (default 600)
  DIFY_BOOTSTRAP_LOG_LEVEL      DEBUG | INFO | WARNING | ERROR (default INFO)
"""

import json
import os
import re
import signal
import sys
import time
from typing import Dict, Iterator, Optional

from .log import log
from .plugin_process import PluginProcess, PluginStartError
from .runtime_api import Invocation, RuntimeAPI
from .session import (
    InvalidEvent,
    SessionOutcome,
    SessionRequest,
    log_outcome,
    run_session,
    runtime_error,
)

# stop this long before Lambda's deadline so the error and end events still get out
DEADLINE_MARGIN_SECONDS = 1.0


def manifest_entrypoint(task_root: str) -> Optional[str]:
    """Reads meta.runner.entrypoint from manifest.yaml without a YAML parser."""
    try:
        with open(os.path.join(task_root, "manifest.yaml"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"^[ \t]+entrypoint:[ \t]*['\"]?([A-Za-z0-9_.]+)['\"]?[ \t]*(?:#.*)?$", text, re.M)
    if m is None:  # flow style: runner: {language: python, version: "3.12", entrypoint: main}
        m = re.search(r"entrypoint:[ \t]*['\"]?([A-Za-z0-9_.]+)", text)
    return m.group(1) if m else None


def env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, ""))
        return value if value > 0 else default
    except ValueError:
        return default


class PluginManager:
    """Keeps one warm plugin process; starts it again after a crash or timeout."""

    def __init__(self, python: str, entrypoint: str, cwd: str, env: Dict[str, str]) -> None:
        self.python = python
        self.entrypoint = entrypoint
        self.cwd = cwd
        self.env = env
        self.process: Optional[PluginProcess] = None
        self.starts = 0

    def launch(self) -> PluginProcess:
        """Starts the plugin if it is not running, without waiting for it to be ready."""
        if self.process is not None and self.process.alive():
            return self.process
        if self.process is not None:
            self.process.kill()
            self.process = None
            log("INFO", "restarting plugin process")
        process = PluginProcess(self.python, self.entrypoint, self.cwd, self.env)
        self.starts += 1
        process.spawn()
        self.process = process
        return process

    def ensure(self, timeout: float) -> PluginProcess:
        """A running plugin that has sent its first heartbeat, waiting at most `timeout` for it."""
        process = self.launch()
        try:
            process.wait_ready(timeout)
        except PluginStartError:
            self.process = None
            raise
        return process

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def discard(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None


# The daemon's SDK savings in the layer (/opt/dify-sdk-speedups beside /opt/python): a sitecustomize
# that only the plugin gets on its path, after its own code so that a sitecustomize of its own wins.
SDK_SPEEDUPS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "dify-sdk-speedups")


def child_env(task_root: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["INSTALL_METHOD"] = "local"
    env["PYTHONUNBUFFERED"] = "1"
    first = [task_root] + ([SDK_SPEEDUPS] if os.path.isfile(os.path.join(SDK_SPEEDUPS, "sitecustomize.py")) else [])
    paths = first + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in first]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def handle(api: RuntimeAPI, manager: PluginManager, inv: Invocation, startup_timeout: float,
           default_timeout: float) -> None:
    trace = inv.headers.get("lambda-runtime-trace-id")
    if trace:
        os.environ["_X_AMZN_TRACE_ID"] = trace
    try:
        request = SessionRequest.parse(json.loads(inv.body or b"null"))
    except (ValueError, InvalidEvent) as e:
        log("ERROR", "invocation %s: invalid event: %s" % (inv.request_id, e))
        api.invocation_error(inv.request_id, "InvalidEvent", str(e))
        return

    started = time.monotonic()
    limit = request.timeout if request.timeout is not None else default_timeout
    remaining = inv.remaining_seconds()
    if remaining is not None:
        limit = max(0.1, min(limit, remaining - DEADLINE_MARGIN_SECONDS))
    deadline = started + limit
    sid = request.session_id
    outcome = SessionOutcome()

    def body() -> Iterator[bytes]:
        try:
            try:
                process = manager.ensure(min(startup_timeout, limit))
            except PluginStartError as e:
                log("ERROR", str(e))
                outcome.crashed = True
                yield from runtime_error(sid, str(e))
                return
            yield from run_session(process, request, deadline, limit, outcome)
        except Exception as e:  # a bug here must still close the session for the caller
            log("ERROR", "invocation %s: bootstrap failure: %r" % (inv.request_id, e))
            if not outcome.ended:
                outcome.crashed = True
                yield from runtime_error(sid, "plugin bootstrap failure: %s" % e)

    chunks = body()
    try:
        status, text = api.stream_response(inv.request_id, chunks)
        if status >= 300:
            log("ERROR", "runtime API rejected the response of %s: HTTP %d %.300s" % (inv.request_id, status, text))
    except OSError as e:
        log("ERROR", "streaming the response of %s failed: %s" % (inv.request_id, e))
    finally:
        chunks.close()
    log_outcome(inv.request_id, sid, outcome, started)
    if outcome.timed_out or (not outcome.ended and not outcome.crashed):
        # the handler may still be running (there is no cancel message): start clean
        manager.discard()
    if not manager.alive():
        # restart now, after the response went out, so the plugin boots before the next
        # invocation (which waits for its heartbeat); nothing here waits for it
        try:
            manager.launch()
        except PluginStartError as e:
            log("WARNING", "%s (will retry at the next invocation)" % e)


def main() -> int:
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        log("ERROR", "AWS_LAMBDA_RUNTIME_API is not set")
        return 2
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    python = os.environ.get("DIFY_PLUGIN_PYTHON") or sys.executable
    entrypoint = os.environ.get("DIFY_PLUGIN_ENTRYPOINT") or manifest_entrypoint(task_root) or "main"
    startup_timeout = env_float("DIFY_PLUGIN_STARTUP_TIMEOUT", 120.0)
    default_timeout = env_float("DIFY_PLUGIN_DEFAULT_TIMEOUT", 600.0)

    api = RuntimeAPI(address)
    manager = PluginManager(python, entrypoint, task_root, child_env(task_root))
    log("INFO", "dify plugin bootstrap: task root %s, plugin python %s" % (task_root, python))
    # Lambda's init phase lasts at most 10 s ("Lambda retries the Init phase at the time of the
    # first function invocation with the configured function timeout" when it overruns,
    # https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html). The plugin
    # is only spawned here; the first invocation waits for its first heartbeat, bounded by the
    # startup timeout and the invocation's own deadline.
    try:
        manager.launch()
    except PluginStartError as e:
        log("ERROR", str(e))
        api.init_error("PluginStartError", str(e))
        return 1

    def terminate(signum: int, frame: object) -> None:
        # no locks here: just take the plugin down with us
        pid = manager.process.pid if manager.process is not None else None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    try:
        while True:
            try:
                inv = api.next()
            except OSError as e:
                log("ERROR", "runtime API unreachable: %s" % e)
                return 1
            handle(api, manager, inv, startup_timeout, default_timeout)
    finally:
        manager.discard()


if __name__ == "__main__":
    sys.exit(main())
