"""One Lambda invocation = one plugin session, streamed as NDJSON."""

import queue
import time
from typing import Dict, Iterator, Optional

from .backwards import BackwardsBridge, Callback
from .log import log
from .ndjson import dumps_line
from .plugin_process import PluginExited, PluginProcess, PluginWriteError


class InvalidEvent(Exception):
    pass


class SessionRequest:
    """A validated invocation event: {request, callback, timeout_seconds}."""

    def __init__(self, envelope: Dict[str, object], callback: Optional[Callback], timeout: Optional[float]) -> None:
        self.envelope = envelope
        self.callback = callback
        self.timeout = timeout

    @property
    def session_id(self) -> str:
        return str(self.envelope["session_id"])

    @classmethod
    def parse(cls, event: object) -> "SessionRequest":
        if not isinstance(event, dict):
            raise InvalidEvent("invocation event must be a JSON object")
        envelope = event.get("request")
        if not isinstance(envelope, dict):
            raise InvalidEvent("invocation event has no 'request' object")
        session_id = envelope.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            raise InvalidEvent("request has no session_id")
        if not isinstance(envelope.get("data"), dict):
            raise InvalidEvent("request has no 'data' object")
        envelope = dict(envelope)
        envelope.setdefault("event", "request")
        timeout = event.get("timeout_seconds")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            timeout = None
        return cls(envelope, Callback.from_event(event.get("callback")), float(timeout) if timeout else None)


def session_event(session_id: str, message_type: str, data: Dict[str, object]) -> Dict[str, object]:
    return {"event": "session", "session_id": session_id, "data": {"type": message_type, "data": data}}


def runtime_error(session_id: str, message: str) -> Iterator[bytes]:
    """A session error followed by the session end, as the SDK itself reports failures."""
    yield dumps_line(session_event(session_id, "error", {
        "error_type": "PluginRuntimeError",
        "message": message,
        "args": None,
    }))
    yield dumps_line(session_event(session_id, "end", {}))


class SessionOutcome:
    def __init__(self) -> None:
        self.ended = False
        self.crashed = False
        self.timed_out = False
        self.events = 0


def run_session(plugin: PluginProcess, request: SessionRequest, deadline: float,
                limit_seconds: float, outcome: SessionOutcome) -> Iterator[bytes]:
    """Writes the request to the child and yields the session's events until `end`.

    `invoke` messages are answered by the backwards bridge and not forwarded;
    everything else of the session (stream, error, end) is. `deadline` is a
    time.monotonic() value.
    """
    sid = request.session_id
    q = plugin.subscribe(sid)
    bridge = BackwardsBridge(plugin, sid, request.callback, deadline)
    try:
        try:
            plugin.send(request.envelope)
        except PluginWriteError:
            # the reader thread reports the exit (with stderr) on the queue
            pass
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome.timed_out = True
                yield from runtime_error(sid, "plugin session timed out after %g s" % round(limit_seconds, 1))
                return
            try:
                item = q.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(item, PluginExited):
                outcome.crashed = True
                yield from runtime_error(sid, item.message())
                return
            message = item.get("data") if isinstance(item, dict) else None
            if not isinstance(message, dict):
                continue
            mtype = message.get("type")
            if mtype == "invoke":
                invoke = message.get("data")
                if isinstance(invoke, dict):
                    bridge.start(invoke)
                continue
            outcome.events += 1
            yield dumps_line(item)
            if mtype == "end":
                outcome.ended = True
                return
    finally:
        bridge.close()
        plugin.unsubscribe(sid)


def log_outcome(request_id: str, sid: str, outcome: SessionOutcome, started: float) -> None:
    state = "ended" if outcome.ended else "crashed" if outcome.crashed else "timed out" if outcome.timed_out else "aborted"
    log("INFO", "invocation %s session %s %s: %d events in %.0f ms"
        % (request_id, sid, state, outcome.events, (time.monotonic() - started) * 1000))
