/**
 * How the local daemon starts the programs it runs for plugins (the plugin itself, uv, pip and
 * the build backends they call): with a scrubbed environment, in a process group of their own
 * so that stopping one stops everything it started, and tied to the daemon's life so that a
 * daemon killed with SIGKILL leaves none of them behind.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";

/**
 * Only what a program needs from the daemon's environment: never the daemon's own secrets
 * (SERVER_KEY, the inner-API key, AWS credentials). Install-time code (a package's build
 * backend) runs with exactly what the plugin itself runs with.
 */
export function scrubbedEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...extra };
  for (const name of PASSED_THROUGH) if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

/**
 * The machine's settings a plugin or installer needs to reach package indexes and APIs: locale,
 * proxies, the CA bundle of a TLS-inspecting proxy, index mirrors (upstream's uv environment
 * passes the same kind: internal/core/local_runtime/setup_python_environment.go @ bdb5642a).
 */
const PASSED_THROUGH = [
  "PATH",
  "HOME",
  "LANG",
  "LC_ALL",
  "TZ",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "REQUESTS_CA_BUNDLE",
  "CURL_CA_BUNDLE",
  "UV_NATIVE_TLS",
  "PIP_INDEX_URL",
  "PIP_EXTRA_INDEX_URL",
  "PIP_TRUSTED_HOST",
  "PIP_FIND_LINKS",
  "PIP_CERT",
  "UV_INDEX_URL",
  "UV_EXTRA_INDEX_URL",
  "UV_DEFAULT_INDEX",
  "UV_INDEX",
  "UV_INDEX_NEXUS_USERNAME",
  "UV_INDEX_NEXUS_PASSWORD",
];

/**
 * A watcher that stays the group's parent: when the daemon goes (its parent pid changes, as it
 * does on SIGKILL), it kills the whole group, grandchildren included. util-linux's setpriv
 * --pdeathsig only covers the direct child, and uv runs build backends as its own children.
 */
const GROUP_WATCHER = `
import os, signal, subprocess, sys, time
daemon = os.getppid()
child = subprocess.Popen(sys.argv[1:])
def end_group(*_):
    os.killpg(0, signal.SIGKILL)
signal.signal(signal.SIGTERM, end_group)
while child.poll() is None:
    if os.getppid() != daemon:
        end_group()
    time.sleep(0.2)
sys.exit(child.returncode if child.returncode >= 0 else 128 - child.returncode)
`;

/**
 * Runs a short-lived program (an installer step) under the group watcher. `python` is any
 * Python 3 interpreter; stopping the returned child's group stops everything it started.
 */
export function spawnWatchedGroup(
  python: string,
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
) {
  return spawn(python, ["-c", GROUP_WATCHER, command, ...args], {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
}

let setprivPath: string | null | undefined;

/** setpriv, where the machine has it, sets a parent-death signal before exec with no extra process. */
function setpriv(): string | null {
  if (setprivPath === undefined) {
    try {
      execFileSync("setpriv", ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" });
      setprivPath = "setpriv";
    } catch {
      setprivPath = null;
    }
  }
  return setprivPath;
}

/**
 * Starts a long-lived program (a plugin) as the leader of its own process group, killed by the
 * kernel when the daemon dies where setpriv is available (otherwise it ends on stdin's EOF, as
 * the SDK does when its daemon goes).
 */
export function spawnGroupLeader(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): ChildProcessWithoutNullStreams {
  const wrapper = setpriv();
  const [file, argv] = wrapper ? [wrapper, ["--pdeathsig", "KILL", "--", command, ...args]] : [command, args];
  return spawn(file, argv, { cwd, env, stdio: ["pipe", "pipe", "pipe"], detached: true });
}

/** Signals a child's whole process group; a group that is already gone is not an error. */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
