"""The part of Lambda's managed Python runtime a function sees: its runtime interface client.

Polls the Runtime API (AWS_LAMBDA_RUNTIME_API), imports the handler named by _HANDLER
("module.function") from the task root and the layers' python directory, calls it with the event
and a context, and posts the JSON result or the error. Stdlib only. Started as Lambda starts the
managed client, so an exec wrapper (AWS_LAMBDA_EXEC_WRAPPER) receives this command line instead.
"""

import importlib
import json
import os
import sys
import time
import traceback
import urllib.request

API = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]


def _post(path, body, headers=None):
    request = urllib.request.Request(API + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request) as response:
        response.read()


def _error(exc):
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }


class Context:
    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _load_handler():
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    opt = os.environ.get("AWS_LOCAL_OPT_DIR")
    paths = [task_root] + ([os.path.join(opt, "python")] if opt else [])
    sys.path[:0] = [p for p in paths if p not in sys.path]
    module_name, _, function_name = os.environ.get("_HANDLER", "").rpartition(".")
    if not module_name:
        raise ValueError("Bad handler '%s': not a module.function" % os.environ.get("_HANDLER", ""))
    return getattr(importlib.import_module(module_name.replace("/", ".")), function_name)


def main():
    try:
        handler = _load_handler()
    except Exception as exc:  # Lambda reports this as Runtime.ImportModuleError
        error = _error(exc)
        error["errorType"] = "Runtime.ImportModuleError"
        _post("/init/error", json.dumps(error).encode(), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
        sys.exit(1)
    while True:
        with urllib.request.urlopen(API + "/invocation/next") as response:
            request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline = int(response.headers.get("Lambda-Runtime-Deadline-Ms", "0"))
            arn = response.headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
            body = response.read()
        try:
            result = handler(json.loads(body or b"null"), Context(request_id, deadline, arn))
            _post("/invocation/%s/response" % request_id, json.dumps(result).encode())
        except Exception as exc:
            error = _error(exc)
            sys.stderr.write("[ERROR] %s: %s\n" % (error["errorType"], error["errorMessage"]))
            _post("/invocation/%s/error" % request_id, json.dumps(error).encode(),
                  {"Lambda-Runtime-Function-Error-Type": "Unhandled"})


if __name__ == "__main__":
    main()
