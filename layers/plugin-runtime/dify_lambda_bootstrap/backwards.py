"""Backwards invocations: plugin `invoke` messages bridged to the daemon over HTTP.

The plugin runs in stdio (full-duplex) mode, so it writes an `invoke` session
message on stdout and waits for `backwards_response` lines on stdin. In Lambda
nobody holds the other end of that pipe except this bootstrap, so each invoke is
POSTed to the daemon's transaction endpoint and the response lines are written
back to the child's stdin as they arrive.
"""

import http.client
import json
import threading
import time
import urllib.parse
from typing import Dict, List, Optional

from .log import log
from .ndjson import Unparsed, parse_line
from .plugin_process import PluginProcess, PluginWriteError

TRANSACTION_PATH = "/backwards-invocation/transaction"


class Callback:
    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def from_event(cls, value: object) -> Optional["Callback"]:
        if not isinstance(value, dict) or not isinstance(value.get("url"), str) or not value["url"]:
            return None
        token = value.get("token")
        return cls(value["url"], token if isinstance(token, str) else "")


class BackwardsBridge:
    """Runs the backwards invocations of one session, one thread each."""

    def __init__(self, plugin: PluginProcess, session_id: str, callback: Optional[Callback],
                 deadline: float) -> None:
        self.plugin = plugin
        self.session_id = session_id
        self.callback = callback
        self.deadline = deadline  # time.monotonic() value
        self._threads: List[threading.Thread] = []
        self._closed = threading.Event()

    def start(self, invoke: Dict[str, object]) -> None:
        t = threading.Thread(target=self._run, args=(invoke,), name="backwards-invocation", daemon=True)
        self._threads.append(t)
        t.start()

    def close(self) -> None:
        """Stops feeding the child (the session is over); running requests wind down."""
        self._closed.set()

    # ------------------------------------------------------------------

    def _send(self, data: Dict[str, object]) -> bool:
        if self._closed.is_set():
            return False
        try:
            self.plugin.send({"session_id": self.session_id, "event": "backwards_response", "data": data})
            return True
        except PluginWriteError as e:
            log("WARNING", "backwards response not delivered: %s" % e)
            return False

    def _fail(self, request_id: str, message: str) -> None:
        log("WARNING", "backwards invocation %s failed: %s" % (request_id, message))
        self._send({"backwards_request_id": request_id, "event": "error", "message": message, "data": None})
        self._send({"backwards_request_id": request_id, "event": "end", "message": "", "data": None})

    def _run(self, invoke: Dict[str, object]) -> None:
        request_id = str(invoke.get("backwards_request_id") or "")
        kind = invoke.get("type")
        started = time.monotonic()
        if self.callback is None:
            self._fail(request_id, "backwards invocation (%s) is not available: this invocation has no callback" % kind)
            return
        body = (json.dumps({
            "event": "session",
            "session_id": self.session_id,
            "data": {"type": "invoke", "data": invoke},
        }, ensure_ascii=False, separators=(",", ":")) + "\n\n").encode("utf-8")
        try:
            saw_end = self._transact(request_id, body)
        except Exception as e:
            self._fail(request_id, "backwards invocation (%s) failed: %s" % (kind, _describe(e)))
            return
        if not saw_end:
            self._fail(request_id, "backwards invocation (%s) ended without an end event" % kind)
            return
        log("DEBUG", "backwards invocation %s (%s) done in %.0f ms"
            % (request_id, kind, (time.monotonic() - started) * 1000))

    def _transact(self, request_id: str, body: bytes) -> bool:
        assert self.callback is not None
        url = urllib.parse.urlsplit(self.callback.url + TRANSACTION_PATH)
        timeout = max(1.0, self.deadline - time.monotonic())
        if url.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(url.hostname or "", url.port, timeout=timeout)
        elif url.scheme == "http":
            conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        else:
            raise ValueError("unsupported callback URL scheme %r" % url.scheme)
        path = url.path + ("?" + url.query if url.query else "")
        try:
            conn.request("POST", path, body=body, headers={
                "Content-Type": "application/json",
                "Accept": "application/x-ndjson",
                "Dify-Plugin-Session-ID": self.session_id,
                "X-Dify-Plugin-Callback-Token": self.callback.token,
            })
            resp = conn.getresponse()
            if resp.status < 200 or resp.status >= 300:
                text = resp.read(4096).decode("utf-8", errors="replace").strip()
                raise RuntimeError("HTTP %d from daemon%s" % (resp.status, (": " + text) if text else ""))
            while True:
                raw = resp.readline()
                if not raw:
                    return False
                for value in parse_line(raw):
                    if isinstance(value, Unparsed) or not isinstance(value, dict):
                        raise RuntimeError("unparsable line from daemon: %.200s" % (value,))
                    # normally the full envelope; accept a bare response event too
                    data = value.get("data") if "backwards_request_id" not in value else value
                    if not isinstance(data, dict):
                        raise RuntimeError("daemon line without data: %.200s" % json.dumps(value))
                    data.setdefault("backwards_request_id", request_id)
                    data.setdefault("message", "")
                    data.setdefault("data", None)
                    if not self._send(data):
                        return True  # session is gone; nothing left to tell the child
                    if data.get("event") == "end":
                        return True
        finally:
            conn.close()


def _describe(e: Exception) -> str:
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__
