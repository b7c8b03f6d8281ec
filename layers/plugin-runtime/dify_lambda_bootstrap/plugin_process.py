"""The plugin child process: spawn, readiness, stdout demultiplexing, stdin writes."""

import collections
import json
import os
import queue
import subprocess
import threading
import time
from typing import Deque, Dict, List, Optional

from .log import log, plugin_output
from .ndjson import Unparsed, dumps_line, parse_line

STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000


class PluginExited:
    """Put on every open session queue when the child process ends."""

    def __init__(self, code: Optional[int], stderr_tail: str) -> None:
        self.code = code
        self.stderr_tail = stderr_tail

    def message(self) -> str:
        text = "plugin process exited: %s" % self.code
        if self.stderr_tail:
            text += " " + self.stderr_tail
        return text


class PluginStartError(Exception):
    pass


class PluginWriteError(Exception):
    pass


class PluginProcess:
    """One running plugin (`<python> -m <entrypoint>` in the plugin directory).

    Stdout is read by a thread that routes `session` events to per-session
    queues, marks the process ready on the first heartbeat and logs `log` and
    `error` events. Lines without a known event (the manifest the SDK prints at
    startup) are ignored. Stdin writes are serialised by a lock, so the request
    writer and backwards-invocation bridges can share it.
    """

    def __init__(self, python: str, entrypoint: str, cwd: str, env: Dict[str, str]) -> None:
        self.python = python
        self.entrypoint = entrypoint
        self.cwd = cwd
        self.env = env
        self._proc: Optional[subprocess.Popen] = None
        self._ready = threading.Event()
        self._exited = threading.Event()
        self._exit_info: Optional[PluginExited] = None
        self._sessions: Dict[str, "queue.Queue[object]"] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stderr_tail: Deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_done = threading.Event()
        self.started_at = 0.0
        self.ready_at = 0.0
        self.last_heartbeat = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float) -> None:
        """Spawns the child and waits for its first heartbeat."""
        self.spawn()
        self.wait_ready(timeout)

    def spawn(self) -> None:
        """Starts the child without waiting for it: it boots while the caller does other work."""
        self.started_at = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", self.entrypoint],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as e:
            raise PluginStartError("cannot start plugin process %s: %s" % (self.python, e)) from e
        log("INFO", "plugin process %d started: %s -m %s (cwd %s)"
            % (self._proc.pid, self.python, self.entrypoint, self.cwd))
        threading.Thread(target=self._stderr_loop, name="plugin-stderr", daemon=True).start()
        threading.Thread(target=self._stdout_loop, name="plugin-stdout", daemon=True).start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> None:
        """Waits for the first heartbeat; kills the child if it does not come in time."""
        if self._ready.is_set():
            return
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            if self._exited.is_set():
                info = self._exit_info
                raise PluginStartError(
                    "plugin failed to start: " + (info.message() if info else "process exited"))
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise PluginStartError(
                    "plugin did not become ready (no heartbeat) within %.0f s%s"
                    % (timeout, (": " + self.stderr_tail()) if self.stderr_tail() else ""))
            self._ready.wait(min(left, 0.05))
        if not self.ready_at:
            self.ready_at = time.monotonic()
            log("INFO", "plugin ready in %.0f ms" % ((self.ready_at - self.started_at) * 1000))

    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set() and self._proc.poll() is None

    def kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log("WARNING", "plugin process %d did not exit after SIGKILL" % proc.pid)

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc else None

    # ------------------------------------------------------------------ sessions

    def subscribe(self, session_id: str) -> "queue.Queue[object]":
        q: "queue.Queue[object]" = queue.Queue()
        with self._lock:
            self._sessions[session_id] = q
            if self._exit_info is not None:
                q.put(self._exit_info)
        return q

    def unsubscribe(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def send(self, message: object) -> None:
        """Writes one JSON line to the child's stdin."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise PluginWriteError("plugin process is not running")
        data = dumps_line(message)
        with self._write_lock:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (OSError, ValueError) as e:
                raise PluginWriteError("cannot write to plugin stdin: %s" % e) from e

    def stderr_tail(self) -> str:
        text = " | ".join(line for line in self._stderr_tail if line.strip())
        return text[-STDERR_TAIL_CHARS:]

    # ------------------------------------------------------------------ readers

    def _stdout_loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            for raw in iter(proc.stdout.readline, b""):
                for value in parse_line(raw):
                    self._dispatch(value)
        except Exception as e:  # keep the exit notification below reliable
            log("ERROR", "reading plugin stdout failed: %r" % e)
        code = proc.wait()
        # let the stderr reader drain, so the tail explains the exit
        self._stderr_done.wait(2)
        info = PluginExited(code, self.stderr_tail())
        with self._lock:
            self._exit_info = info
            waiting: List["queue.Queue[object]"] = list(self._sessions.values())
        self._exited.set()
        log("WARNING" if code else "INFO", info.message())
        for q in waiting:
            q.put(info)

    def _dispatch(self, value: object) -> None:
        if isinstance(value, Unparsed):
            plugin_output("stdout", str(value))
            return
        if not isinstance(value, dict):
            return
        event = value.get("event")
        if event == "session":
            session_id = value.get("session_id")
            with self._lock:
                q = self._sessions.get(session_id) if isinstance(session_id, str) else None
            if q is not None:
                q.put(value)
            else:
                log("WARNING", "dropping output of inactive session %r" % (session_id,))
        elif event == "heartbeat":
            self.last_heartbeat = time.monotonic()
            self._ready.set()
        elif event == "log":
            data = value.get("data") or {}
            if isinstance(data, dict):
                plugin_output("log", "%s %s" % (data.get("level", "INFO"), data.get("message", "")))
            else:
                plugin_output("log", json.dumps(data))
        elif event == "error":
            plugin_output("error", json.dumps(value.get("data"), ensure_ascii=False))
        # anything else (e.g. the manifest printed at startup) is not part of a session

    def _stderr_loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                self._stderr_tail.append(line)
                plugin_output("stderr", line)
        finally:
            self._stderr_done.set()
