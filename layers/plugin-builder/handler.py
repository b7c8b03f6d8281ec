"""Lambda handler that turns a Dify plugin package into a plugin Lambda's code bundle.

Runs on the managed python3.12 runtime (boto3 and pip are part of it).

Event:  {"bucket": str, "package_key": str, "output_key": str,
         "arch": "x86_64"|"amd64"|"arm64"|"aarch64" (default x86_64),
         "python_version": "3.12" (default)}
Result: {"code_key": str, "size_bytes": int, "unzipped_bytes": int, "log_tail": str}
   or:  {"error": str}   (for pip failures: the tail of pip's output)

Steps: download the .difypkg (a zip) from S3, unpack it under /tmp, install the
plugin's dependencies -- pyproject.toml [project].dependencies if present, else
requirements.txt, as upstream's daemon prefers -- with pip as binary wheels for
the Lambda platform into the code directory, compile bytecode when the target
Python is the one running here, zip everything and upload it to `output_key`.

The plugin's own pins (including dify_plugin) land in the bundle, and the
bootstrap puts the bundle directory ahead of the layer on the child's path, so
a plugin gets the SDK version it asked for; the layer's SDK is the fallback.

`build()` does all but the S3 transfers and can be used on its own.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Any, Dict, List, Optional

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
LOG_TAIL_CHARS = 4000
# never taken from the package: environments, caches and bytecode of the author's machine
SKIP_DIRS = {".venv", ".git", "__pycache__", ".uv-cache", ".pytest_cache"}


class BuildError(Exception):
    pass


def handler(event: Dict[str, Any], context: Any = None) -> Dict[str, Any]:
    try:
        bucket = _str(event, "bucket")
        package_key = _str(event, "package_key")
        output_key = _str(event, "output_key")
        arch = str(event.get("arch") or "x86_64")
        python_version = str(event.get("python_version") or "3.12")
    except (BuildError, AttributeError) as e:
        return {"error": "invalid event: %s" % e}

    deadline = None
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000.0 - 15

    work = tempfile.mkdtemp(prefix="plugin-build-")
    try:
        import boto3  # part of the managed runtime; imported here so build() works without it

        s3 = boto3.client("s3")
        package = os.path.join(work, "package.difypkg")
        s3.download_file(bucket, package_key, package)
        bundle = os.path.join(work, "code.zip")
        result = build(package, bundle, arch, python_version, work, deadline)
        if "error" in result:
            return result
        s3.upload_file(bundle, bucket, output_key)
        result["code_key"] = output_key
        return result
    except BuildError as e:
        return {"error": str(e)}
    except Exception as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(package: str, bundle: str, arch: str, python_version: str, work: str,
          deadline: Optional[float] = None) -> Dict[str, Any]:
    """Builds `bundle` (a zip) from the plugin package file `package`."""
    march = ARCHES.get(arch)
    if march is None:
        return {"error": "unknown arch %r (expected one of %s)" % (arch, ", ".join(sorted(ARCHES)))}
    if not python_version.count(".") == 1 or not python_version.replace(".", "").isdigit():
        return {"error": "python_version must look like 3.12, got %r" % python_version}

    code = os.path.join(work, "code")
    os.makedirs(code, exist_ok=True)
    _unpack(package, code)
    if not os.path.isfile(os.path.join(code, "manifest.yaml")):
        return {"error": "package has no manifest.yaml at its root"}

    log: List[str] = []
    requirements = _requirements_file(code, work)
    if requirements is not None:
        ok, output = _pip_install(requirements, code, march, python_version, deadline)
        log.append(output)
        if not ok:
            return {"error": _tail(output)}
        shutil.rmtree(os.path.join(code, "bin"), ignore_errors=True)
    else:
        log.append("no requirements.txt or pyproject.toml dependencies; nothing to install\n")

    if "%d.%d" % sys.version_info[:2] == python_version:
        # unchecked-hash: valid without trusting file timestamps after the zip round trip
        proc = subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
             "-x", r"(^|/)\.venv/", code],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            log.append("compileall reported errors (ignored):\n" + _tail(proc.stdout, 1000))

    unzipped = _zip_dir(code, bundle)
    return {
        "size_bytes": os.path.getsize(bundle),
        "unzipped_bytes": unzipped,
        "log_tail": _tail("".join(log)),
    }


# ---------------------------------------------------------------------------


def _str(event: Dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise BuildError("%s must be a non-empty string" % key)
    return value


def _unpack(package: str, dest: str) -> None:
    root = os.path.realpath(dest)
    try:
        archive = zipfile.ZipFile(package)
    except zipfile.BadZipFile as e:
        raise BuildError("package is not a zip file: %s" % e) from e
    with archive:
        for info in archive.infolist():
            name = info.filename
            parts = name.rstrip("/").split("/")
            if any(p in SKIP_DIRS for p in (parts if info.is_dir() else parts[:-1])) or name.endswith(".pyc"):
                continue
            target = os.path.realpath(os.path.join(root, name))
            if os.path.isabs(name) or not (target == root or target.startswith(root + os.sep)):
                raise BuildError("package entry escapes the package directory: %r" % name)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BuildError("package contains a symbolic link: %r" % name)
            if info.is_dir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, mode | 0o644 if mode else 0o644)


def _requirements_file(code: str, work: str) -> Optional[str]:
    pyproject = os.path.join(code, "pyproject.toml")
    if os.path.isfile(pyproject):
        import tomllib

        with open(pyproject, "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise BuildError("pyproject.toml is not valid TOML: %s" % e) from e
        deps = (data.get("project") or {}).get("dependencies")
        if isinstance(deps, list) and deps:
            path = os.path.join(work, "requirements-from-pyproject.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(str(d) for d in deps) + "\n")
            return path
    requirements = os.path.join(code, "requirements.txt")
    if os.path.isfile(requirements):
        return requirements
    return None


def _pip_install(requirements: str, target: str, march: str, python_version: str,
                 deadline: Optional[float]) -> "tuple[bool, str]":
    cmd = [
        sys.executable, "-m", "pip", "install",
        "--target", target,
        "--platform", "manylinux2014_" + march,
        "--platform", "manylinux_2_28_" + march,
        "--platform", "manylinux_2_34_" + march,
        "--implementation", "cp",
        "--python-version", python_version,
        "--only-binary=:all:",
        "--no-compile",
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar", "off",
        "-r", requirements,
    ]
    env = dict(os.environ)
    tmp = tempfile.gettempdir()
    env.setdefault("HOME", tmp)
    env.setdefault("PIP_CACHE_DIR", os.path.join(tmp, "pip-cache"))  # reused by warm builders
    env.setdefault("PIP_ROOT_USER_ACTION", "ignore")
    timeout = None if deadline is None else max(10.0, deadline - time.monotonic())
    try:
        proc = subprocess.run(cmd, cwd=target, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.output if isinstance(e.output, str) else (e.output or b"").decode("utf-8", "replace")
        return False, out + "\npip install timed out after %.0f s" % (timeout or 0)
    return proc.returncode == 0, proc.stdout


def _zip_dir(src: str, bundle: str) -> int:
    total = 0
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for dirpath, dirnames, filenames in os.walk(src):
            rel_dir = os.path.relpath(dirpath, src)
            # __pycache__ here holds only what build() compiled (the package's own was skipped)
            dirnames[:] = sorted(d for d in dirnames if d == "__pycache__" or d not in SKIP_DIRS)
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    continue
                arcname = name if rel_dir == "." else os.path.join(rel_dir, name)
                info = zipfile.ZipInfo.from_file(path, arcname)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (stat.S_IFREG | (os.stat(path).st_mode & 0o777 | 0o444)) << 16
                with open(path, "rb") as f:
                    data = f.read()
                total += len(data)
                z.writestr(info, data)
    return total


def _tail(text: str, chars: int = LOG_TAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= chars else "..." + text[-chars:]
