"""Lambda bootstrap that runs a Dify plugin as a warm stdio child process.

The plugin is started once per execution environment with the SDK's stdio
protocol (INSTALL_METHOD=local) and kept running across invocations. Each
invocation writes one request envelope to the child's stdin and streams the
session's output events back through the Lambda Runtime API as NDJSON.
Backwards invocations (plugin -> daemon) are bridged over HTTP to the daemon's
callback URL. Standard library only, so it runs on the managed Python runtimes.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
