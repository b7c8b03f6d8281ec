"""Lambda handler that turns a Dify plugin package into a plugin Lambda's code bundle.

Runs on the managed python3.12 runtime (boto3 and pip are part of it).

Event:  {"bucket": str, "package_key": str, "output_key": str,
         "arch": "x86_64"|"amd64"|"arm64"|"aarch64" (default x86_64),
         "python_version": "3.12" (default),
         "max_unzipped_bytes": int (optional: Lambda's 250 MB less the layer),
         "index_url": str (optional: PIP_MIRROR_URL)}
Result: {"code_key": str, "size_bytes": int, "unzipped_bytes": int, "method": str, "log_tail": str}
   or:  {"error": str, "method": str, "log_tail": str}

Steps: download the .difypkg (a zip) from S3, unpack it under /tmp, install the
plugin's dependencies into the code directory for the Lambda platform, compile
bytecode when the target Python is the one running here, check the size, zip
everything and upload it to `output_key`.

Which dependencies, as upstream's daemon chooses them
(langgenius/dify-plugin-daemon internal/core/local_runtime/setup_python_environment.go,
detectDependencyFileType and installDependencies at bdb5642):
- pyproject.toml with uv.lock: exactly the lock (upstream runs `uv sync --no-dev
  --frozen`; here `uv export --frozen --no-dev --no-emit-project`, then those pins
  are installed without resolving again);
- pyproject.toml without a lock: its [project].dependencies, resolved now;
- requirements.txt: resolved now (upstream: `uv pip install -r requirements.txt`).
  With a mirror (index_url) requirements.txt wins when present, as upstream.
The installer is uv when one is at hand (UV_PATH, PATH, or pip-installed once into
/tmp), else pip. Wheels are taken for the Lambda platform whatever this machine is;
source distributions are built only when this machine is the target platform
(same architecture and Python version: the builder function runs on the plugin
architecture), because a wheel built here must run there.

Every subprocess gets a scrubbed environment: building a source distribution runs
the package's own code, which must not see this function's credentials (the
AWS_* variables of its role) or anything else of the daemon's.

The plugin's own pins (including dify_plugin) land in the bundle, and the
bootstrap puts the bundle directory ahead of the layer on the child's path, so
a plugin gets the SDK version it asked for.

`build()` does all but the S3 transfers and can be used on its own.
"""

import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Any, Dict, List, Optional, Tuple

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
LOG_TAIL_CHARS = 4000
# never taken from the package: environments, caches and bytecode of the author's machine
SKIP_DIRS = {".venv", ".git", "__pycache__", ".uv-cache", ".pytest_cache"}
# Lambda's Python runtimes run on Amazon Linux 2023 (glibc 2.34): any manylinux wheel up to 2.34
LAMBDA_GLIBC = "2_34"
# the uv pip-installed when none is at hand (same minor as the tests use)
UV_VERSION = "0.13.9"
# variables a build may see: where things are and how to reach the network, nothing else
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE",
              "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class BuildError(Exception):
    pass


def handler(event: Dict[str, Any], context: Any = None) -> Dict[str, Any]:
    try:
        bucket = _str(event, "bucket")
        package_key = _str(event, "package_key")
        output_key = _str(event, "output_key")
        arch = str(event.get("arch") or "x86_64")
        python_version = str(event.get("python_version") or "3.12")
        max_unzipped = event.get("max_unzipped_bytes")
        index_url = event.get("index_url") or None
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
        result = build(package, bundle, arch, python_version, work, deadline,
                       max_unzipped_bytes=int(max_unzipped) if max_unzipped else None, index_url=index_url)
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
          deadline: Optional[float] = None, max_unzipped_bytes: Optional[int] = None,
          index_url: Optional[str] = None) -> Dict[str, Any]:
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

    target = Target(march, python_version)
    log: List[str] = []
    plan = _dependency_plan(code, work, index_url)
    method = plan.method
    if plan.requirements is None:
        log.append("no uv.lock, requirements.txt or pyproject.toml dependencies; nothing to install\n")
    else:
        log.append("%s; sources %s\n" % (method, "built here (this is the target platform)" if target.native else
                                        "refused (wheels only: this is not the target platform)"))
        ok, output, method = _install(plan, code, target, work, deadline, index_url)
        log.append(output)
        if not ok:
            return {"error": "installing dependencies from %s failed:\n%s" % (method, _tail(output)),
                    "method": method, "log_tail": _tail("".join(log))}
        shutil.rmtree(os.path.join(code, "bin"), ignore_errors=True)

    if "%d.%d" % sys.version_info[:2] == python_version:
        # bytecode depends on the Python version only; unchecked-hash: valid without trusting
        # file timestamps after the zip round trip
        proc = subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
             "-x", r"(^|/)\.venv/", code],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_scrubbed_env(work))
        if proc.returncode != 0:
            log.append("compileall reported errors (ignored):\n" + _tail(proc.stdout, 1000))

    unzipped = _tree_bytes(code)
    if max_unzipped_bytes is not None and unzipped > max_unzipped_bytes:
        return {"error": "plugin code is %.1f MiB unzipped, over the %.1f MiB a Lambda function has left next to its layer "
                         "(250 MB in all); largest: %s" % (unzipped / 2 ** 20, max_unzipped_bytes / 2 ** 20, _largest(code)),
                "method": method, "unzipped_bytes": unzipped, "log_tail": _tail("".join(log))}

    _zip_dir(code, bundle)
    return {
        "size_bytes": os.path.getsize(bundle),
        "unzipped_bytes": unzipped,
        "method": method,
        "log_tail": _tail("".join(log)),
    }


# ---------------------------------------------------------------------------


class Target:
    """The platform the plugin function runs on."""

    def __init__(self, march: str, python_version: str) -> None:
        self.march = march
        self.python_version = python_version
        here = ARCHES.get(platform.machine().lower())
        self.native = here == march and "%d.%d" % sys.version_info[:2] == python_version and sys.platform == "linux"


class Plan:
    def __init__(self, method: str, requirements: Optional[str], locked: bool) -> None:
        self.method = method
        self.requirements = requirements  # path of a requirements file, or of pyproject.toml for a lock
        self.locked = locked


def _dependency_plan(code: str, work: str, index_url: Optional[str]) -> Plan:
    pyproject = os.path.join(code, "pyproject.toml")
    requirements = os.path.join(code, "requirements.txt")
    lock = os.path.join(code, "uv.lock")
    # with a mirror, upstream prefers requirements.txt: a lock names its own index's URLs
    if index_url and os.path.isfile(requirements):
        return Plan("requirements.txt (resolved now, mirror %s)" % index_url, requirements, False)
    if os.path.isfile(pyproject):
        if os.path.isfile(lock):
            return Plan("uv.lock (uv export --frozen --no-dev, installed as locked)", pyproject, True)
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
            return Plan("pyproject.toml [project].dependencies (no uv.lock: resolved now)", path, False)
    if os.path.isfile(requirements):
        return Plan("requirements.txt (resolved now)", requirements, False)
    return Plan("nothing to install", None, False)


def _install(plan: Plan, code: str, target: Target, work: str, deadline: Optional[float],
             index_url: Optional[str]) -> Tuple[bool, str, str]:
    """(ok, installer output, method with the installer that ran)."""
    uv, how = _find_uv(work, deadline, index_url)
    if plan.locked:
        if uv is None:
            return False, "a uv.lock must be installed with uv, which is not available: %s" % how, plan.method
        ok, out = _run([uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt",
                        "--no-header", "-o", os.path.join(work, "locked.txt"), "--directory", code,
                        "--python", sys.executable], work, deadline)
        if not ok:
            return False, out, plan.method
        requirements = os.path.join(work, "locked.txt")
    else:
        requirements = plan.requirements or ""
    if uv is not None:
        cmd = [uv, "pip", "install", "--target", code, "--python", sys.executable,
               "--python-version", target.python_version,
               "--python-platform", "%s-manylinux_%s" % (target.march, LAMBDA_GLIBC),
               "--no-progress", "-r", requirements]
        if plan.locked:
            cmd += ["--no-deps", "--require-hashes"]
        if not target.native:
            cmd.append("--no-build")
        if index_url:
            cmd += ["--index-url", index_url]
        installer = "uv pip install"
    else:
        cmd = [sys.executable, "-m", "pip", "install", "--target", code, "--no-compile",
               "--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-r", requirements]
        if not target.native:
            for tag in ("manylinux2014_", "manylinux_2_28_", "manylinux_%s_" % LAMBDA_GLIBC):
                cmd += ["--platform", tag + target.march]
            cmd += ["--implementation", "cp", "--python-version", target.python_version, "--only-binary=:all:"]
        if index_url:
            cmd += ["--index-url", index_url]
        installer = "pip install (%s)" % how
    ok, out = _run(cmd, work, deadline, cwd=code)
    method = "%s, %s" % (plan.method, installer)
    if not ok and not target.native and ("no-build" in out or "only-binary" in out or "no matching distribution" in out.lower()
                                         or "source distribution" in out.lower()):
        out += ("\nA dependency may publish only a source distribution: it can be built only on the target platform "
                "(%s, Python %s), and this builder is %s, Python %d.%d."
                % (target.march, target.python_version, platform.machine(), sys.version_info[0], sys.version_info[1]))
    return ok, out, method


_uv_cache: Dict[str, Optional[str]] = {}


def _find_uv(work: str, deadline: Optional[float], index_url: Optional[str]) -> Tuple[Optional[str], str]:
    """A uv executable: UV_PATH, then PATH, then one pip-installed into /tmp (kept for warm builds)."""
    configured = os.environ.get("UV_PATH")
    if configured and os.access(configured, os.X_OK):
        return configured, "UV_PATH"
    found = shutil.which("uv")
    if found:
        return found, "uv on PATH"
    if "bootstrapped" in _uv_cache:
        uv = _uv_cache["bootstrapped"]
        return uv, "uv %s from /tmp" % UV_VERSION if uv else "pip could not install uv earlier"
    target = os.path.join(tempfile.gettempdir(), "builder-uv")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", target,
           "uv==%s" % UV_VERSION]
    if index_url:
        cmd += ["--index-url", index_url]
    ok, out = _run(cmd, work, deadline)
    uv = os.path.join(target, "bin", "uv")
    _uv_cache["bootstrapped"] = uv if ok and os.access(uv, os.X_OK) else None
    if _uv_cache["bootstrapped"] is None:
        return None, "pip could not install uv %s: %s" % (UV_VERSION, _tail(out, 500))
    return uv, "uv %s installed into /tmp" % UV_VERSION


def _scrubbed_env(work: str) -> Dict[str, str]:
    """What a build may see: paths, locale, TLS and proxy settings; never credentials."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV}
    env["PATH"] = os.pathsep.join(p for p in (os.path.dirname(sys.executable), env.get("PATH", "/usr/bin:/bin")) if p)
    tmp = tempfile.gettempdir()
    env["HOME"] = work
    env["TMPDIR"] = work
    # caches outlive one build: a warm builder reuses downloads
    env["PIP_CACHE_DIR"] = os.path.join(tmp, "pip-cache")
    env["UV_CACHE_DIR"] = os.path.join(tmp, "uv-cache")
    env["PIP_ROOT_USER_ACTION"] = "ignore"
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("LANG", "C.UTF-8")
    return env


def _run(cmd: List[str], work: str, deadline: Optional[float], cwd: Optional[str] = None) -> Tuple[bool, str]:
    timeout = None if deadline is None else max(10.0, deadline - time.monotonic())
    try:
        proc = subprocess.run(cmd, cwd=cwd or work, env=_scrubbed_env(work), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.output if isinstance(e.output, str) else (e.output or b"").decode("utf-8", "replace")
        return False, out + "\n%s timed out after %.0f s" % (os.path.basename(cmd[0]), timeout or 0)
    except OSError as e:
        return False, "cannot run %s: %s" % (cmd[0], e)
    return proc.returncode == 0, "$ %s\n%s" % (" ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
                                              proc.stdout)


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


def _tree_bytes(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d == "__pycache__" or d not in SKIP_DIRS]
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def _largest(code: str, count: int = 5) -> str:
    sizes = []
    for name in os.listdir(code):
        full = os.path.join(code, name)
        sizes.append((_tree_bytes(full) if os.path.isdir(full) else os.path.getsize(full), name))
    sizes.sort(reverse=True)
    return ", ".join("%s %.1f MiB" % (name, size / 2 ** 20) for size, name in sizes[:count])


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
