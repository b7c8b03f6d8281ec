"""Minimal client of the Lambda Runtime API (2018-06-01), with response streaming."""

import http.client
import json
import time
from typing import Dict, Iterable, Iterator, Optional, Tuple

from .log import log

API_VERSION = "2018-06-01"


class Invocation:
    def __init__(self, request_id: str, deadline_ms: Optional[int], body: bytes, headers: Dict[str, str]) -> None:
        self.request_id = request_id
        self.deadline_ms = deadline_ms
        self.body = body
        self.headers = headers

    def remaining_seconds(self) -> Optional[float]:
        if self.deadline_ms is None:
            return None
        return self.deadline_ms / 1000.0 - time.time()


class RuntimeAPI:
    def __init__(self, address: str) -> None:
        # AWS_LAMBDA_RUNTIME_API is "host:port"
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            host, port = address, "80"
        self.host = host.strip("[]")
        self.port = int(port)

    def _conn(self, timeout: Optional[float] = None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def next(self) -> Invocation:
        """Blocks until the next invocation (no timeout: the environment may be frozen)."""
        while True:
            conn = self._conn()
            try:
                conn.request("GET", "/%s/runtime/invocation/next" % API_VERSION)
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    log("ERROR", "runtime API /next answered HTTP %d: %.300s" % (resp.status, body))
                    time.sleep(0.5)
                    continue
                headers = {k.lower(): v for k, v in resp.getheaders()}
            finally:
                conn.close()
            deadline = headers.get("lambda-runtime-deadline-ms")
            return Invocation(
                request_id=headers.get("lambda-runtime-aws-request-id", ""),
                deadline_ms=int(deadline) if deadline and deadline.isdigit() else None,
                body=body,
                headers=headers,
            )

    def stream_response(self, request_id: str, chunks: Iterable[bytes],
                        content_type: str = "application/x-ndjson") -> Tuple[int, bytes]:
        """POSTs the response with chunked transfer encoding, one chunk per item, as produced."""
        conn = self._conn()
        try:
            conn.request(
                "POST",
                "/%s/runtime/invocation/%s/response" % (API_VERSION, request_id),
                body=_nonempty(chunks),
                headers={
                    "Content-Type": content_type,
                    "Lambda-Runtime-Function-Response-Mode": "streaming",
                    "Transfer-Encoding": "chunked",
                },
                encode_chunked=True,
            )
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def invocation_error(self, request_id: str, error_type: str, message: str) -> None:
        self._post_error("/%s/runtime/invocation/%s/error" % (API_VERSION, request_id), error_type, message)

    def init_error(self, error_type: str, message: str) -> None:
        self._post_error("/%s/runtime/init/error" % API_VERSION, error_type, message)

    def _post_error(self, path: str, error_type: str, message: str) -> None:
        body = json.dumps({"errorMessage": message, "errorType": error_type, "stackTrace": []}).encode("utf-8")
        conn = self._conn(timeout=10)
        try:
            conn.request("POST", path, body=body, headers={
                "Content-Type": "application/json",
                "Lambda-Runtime-Function-Error-Type": error_type,
            })
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 300:
                log("ERROR", "runtime API %s answered HTTP %d" % (path, resp.status))
        except OSError as e:
            log("ERROR", "runtime API %s failed: %s" % (path, e))
        finally:
            conn.close()


def _nonempty(chunks: Iterable[bytes]) -> Iterator[bytes]:
    # an empty chunk would terminate the chunked body early
    for chunk in chunks:
        if chunk:
            yield chunk
