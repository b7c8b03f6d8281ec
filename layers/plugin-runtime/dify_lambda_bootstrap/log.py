"""Bootstrap logging: plain lines on stderr (CloudWatch in Lambda)."""

import os
import sys
import threading

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_threshold = _LEVELS.get(os.environ.get("DIFY_BOOTSTRAP_LOG_LEVEL", "INFO").upper(), 20)
_lock = threading.Lock()


def log(level: str, message: str) -> None:
    if _LEVELS.get(level, 20) < _threshold:
        return
    with _lock:
        try:
            sys.stderr.write("[dify-bootstrap] %s %s\n" % (level, message))
            sys.stderr.flush()
        except Exception:
            pass


def plugin_output(stream: str, line: str) -> None:
    """Echoes a line the plugin wrote (stderr text or a log event)."""
    with _lock:
        try:
            target = sys.stderr if stream == "stderr" else sys.stdout
            target.write("[plugin %s] %s\n" % (stream, line))
            target.flush()
        except Exception:
            pass
