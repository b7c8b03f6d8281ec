/**
 * The plugin builder (layers/plugin-builder/handler.py), run as Lambda runs it: its `build()` in a
 * Python 3.12 process whose environment carries credentials, against the real package index.
 * Which dependencies it installs (a uv.lock exactly, as upstream's `uv sync --frozen`; otherwise
 * the declared ranges), source distributions on the target platform only, the size check before
 * CreateFunction, and that nothing it runs sees its environment.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { buildPackage } from "../support/package-builder.js";
import { repoRoot } from "./synth.js";

const BUILDER_DIR = join(repoRoot, "layers", "plugin-builder");
const HOST_ARCH = process.arch === "arm64" ? "arm64" : "x86_64";
const FOREIGN_ARCH = HOST_ARCH === "arm64" ? "x86_64" : "arm64";
/** What the builder function's own environment holds on Lambda: its role's credentials, the runtime API. */
const SECRETS = {
  AWS_ACCESS_KEY_ID: "AKIAEXAMPLEBUILDER",
  AWS_SECRET_ACCESS_KEY: "builder-role-secret",
  AWS_SESSION_TOKEN: "builder-role-session-token",
  AWS_LAMBDA_RUNTIME_API: "127.0.0.1:9001",
  DAEMON_KEY_SECRET_ARN: "arn:aws:secretsmanager:us-east-1:123456789012:secret:daemon-key-AbCdEf",
};

const MANIFEST = `version: 0.0.1
type: plugin
author: fixtures
name: builder-probe
label:
  en_US: Builder probe
description:
  en_US: Only its dependencies matter.
icon: icon.svg
created_at: "2025-01-01T00:00:00Z"
resource:
  memory: 1048576
plugins:
  tools: []
meta:
  version: 0.0.1
  arch: [amd64, arm64]
  runner:
    language: python
    version: "3.12"
    entrypoint: main
`;

interface BuildOutcome {
  result: { error?: string; method?: string; size_bytes?: number; unzipped_bytes?: number; log_tail?: string };
  /** Top-level names in the code zip. */
  entries: string[];
  /** `name==version` of every installed distribution. */
  installed: string[];
}

let work: string;
let python: string;
let uv: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "builder-test-"));
  python = inject("pythonPath");
  uv = inject("uvPath");
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const DRIVER = `
import json, sys, zipfile
sys.path.insert(0, sys.argv[1])
import handler
args = json.loads(sys.argv[2])
result = handler.build(args["package"], args["bundle"], args["arch"], "3.12", args["work"], max_unzipped_bytes=args.get("max"))
entries, installed = [], []
if "error" not in result:
    with zipfile.ZipFile(args["bundle"]) as z:
        names = z.namelist()
    entries = sorted({n.split("/")[0] for n in names})
    installed = sorted(n.split("/")[0][: -len(".dist-info")].replace("-", "==", 1) for n in names if n.endswith(".dist-info/METADATA"))
print(json.dumps({"result": result, "entries": entries, "installed": installed}))
`;

/** This machine's TLS trust settings (a proxy's CA, say): network configuration the builder passes on. */
const tlsSettings = () =>
  Object.fromEntries(
    ["SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE"].flatMap((k) =>
      process.env[k] ? [[k, process.env[k]!]] : [],
    ),
  );

let runs = 0;
/** Builds a package of `files` with the builder, in a process with SECRETS in its environment. */
async function build(
  files: Record<string, string | Uint8Array>,
  options: { arch?: string; max?: number; withUv?: boolean } = {},
): Promise<BuildOutcome> {
  const dir = join(work, `run-${++runs}`);
  mkdirSync(join(dir, "work"), { recursive: true });
  const pkg = join(dir, "plugin.difypkg");
  writeFileSync(pkg, await buildPackage({ "manifest.yaml": MANIFEST, "main.py": "print('probe')\n", ...files }));
  const args = {
    package: pkg,
    bundle: join(dir, "code.zip"),
    arch: options.arch ?? HOST_ARCH,
    work: join(dir, "work"),
    max: options.max,
  };
  // Lambda's PATH has no uv; UV_PATH stands in for one found, else the builder pip-installs its own.
  const env: Record<string, string> = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: dir,
    TMPDIR: dir,
    ...tlsSettings(),
    ...SECRETS,
  };
  if (options.withUv !== false) env.UV_PATH = uv;
  const run = spawnSync(python, ["-c", DRIVER, BUILDER_DIR, JSON.stringify(args)], {
    env,
    encoding: "utf8",
    timeout: 300_000,
  });
  if (run.status !== 0) throw new Error(`builder process failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as BuildOutcome;
}

/** pyproject.toml + uv.lock locking `locked`, after which pyproject.toml is relaxed to `declared`. */
function lockedProject(locked: string[], declared: string[]): Record<string, string> {
  const dir = mkdtempSync(join(work, "lock-"));
  const pyproject = (deps: string[]) =>
    `[project]\nname = "builder-probe"\nversion = "0.0.1"\nrequires-python = ">=3.12"\ndependencies = [${deps.map((d) => JSON.stringify(d)).join(", ")}]\n`;
  writeFileSync(join(dir, "pyproject.toml"), pyproject(locked));
  execFileSync(uv, ["lock", "--quiet", "--python", python], {
    cwd: dir,
    env: { ...process.env, UV_PYTHON_DOWNLOADS: "never" },
    timeout: 120_000,
  });
  return { "pyproject.toml": pyproject(declared), "uv.lock": readFileSync(join(dir, "uv.lock"), "utf8") };
}

/** A source distribution only (no wheel), whose setup.py records the environment it was built in. */
function envProbeSdist(seenAt: string): string {
  const dir = mkdtempSync(join(work, "envprobe-"));
  const root = join(dir, "envprobe-0.1");
  mkdirSync(join(root, "envprobe"), { recursive: true });
  writeFileSync(join(root, "envprobe", "__init__.py"), "VALUE = 1\n");
  writeFileSync(
    join(root, "setup.py"),
    `import json, os\nfrom setuptools import setup\njson.dump(dict(os.environ), open(${JSON.stringify(seenAt)}, "w"))\nsetup(name="envprobe", version="0.1", packages=["envprobe"])\n`,
  );
  writeFileSync(join(root, "PKG-INFO"), "Metadata-Version: 2.1\nName: envprobe\nVersion: 0.1\n");
  const tarball = join(dir, "envprobe-0.1.tar.gz");
  execFileSync("tar", ["-czf", tarball, "-C", dir, "envprobe-0.1"]);
  return tarball;
}

describe("plugin builder (layers/plugin-builder/handler.py, real package index)", () => {
  it("installs a uv.lock exactly, as upstream's uv sync --frozen, not the ranges pyproject.toml declares", async () => {
    // Resolved afresh, six>=1.10 would be the newest six; the lock says 1.16.0.
    const files = lockedProject(["six==1.16.0"], ["six>=1.10"]);
    const locked = await build(files);
    expect(locked.result.error, locked.result.log_tail).toBeUndefined();
    expect(locked.result.method).toMatch(/^uv\.lock \(uv export --frozen/);
    expect(locked.installed).toEqual(["six==1.16.0"]);
    expect(locked.entries).toEqual(expect.arrayContaining(["main.py", "manifest.yaml", "six.py"]));

    // Without the lock the same pyproject.toml resolves now (upstream's uv sync without --frozen).
    const { "uv.lock": _lock, ...unlocked } = files;
    const fresh = await build(unlocked);
    expect(fresh.result.method).toMatch(/^pyproject\.toml \[project\]\.dependencies \(no uv\.lock: resolved now\)/);
    expect(fresh.installed).toHaveLength(1);
    expect(fresh.installed[0]).not.toBe("six==1.16.0");
  }, 300_000);

  it("builds a dependency published only as a source distribution when it runs on the target platform", async () => {
    // docopt 0.6.2 has no wheel on PyPI.
    const native = await build({ "requirements.txt": "docopt==0.6.2\n" });
    expect(native.result.error, native.result.log_tail).toBeUndefined();
    expect(native.result.method).toBe("requirements.txt (resolved now), uv pip install");
    expect(native.installed).toEqual(["docopt==0.6.2"]);
  }, 300_000);

  it("refuses a source distribution for another architecture, naming the method, the resolver's words and why", async () => {
    const foreign = await build({ "requirements.txt": "docopt==0.6.2\n" }, { arch: FOREIGN_ARCH });
    expect(foreign.result.error).toMatch(
      /^installing dependencies from requirements\.txt \(resolved now\), uv pip install failed:/,
    );
    expect(foreign.result.error).toMatch(/docopt==0\.6\.2 has no usable wheels/);
    expect(foreign.result.error).toMatch(/only a source distribution: it can be built only on the target platform/);
  }, 300_000);

  it("runs the installer, and any build it starts, without the builder's credentials", async () => {
    const seenAt = join(work, "env-seen.json");
    const sdist = envProbeSdist(seenAt);
    const outcome = await build({ "requirements.txt": `envprobe @ file://${sdist}\n` });
    expect(outcome.result.error, outcome.result.log_tail).toBeUndefined();
    expect(outcome.installed).toEqual(["envprobe==0.1"]);
    const seen = JSON.parse(readFileSync(seenAt, "utf8")) as Record<string, string>;
    for (const name of Object.keys(SECRETS)) expect(seen, name).not.toHaveProperty(name);
    expect(Object.values(seen).join("\n")).not.toMatch(/builder-role|AKIAEXAMPLE/);
    expect(seen.PATH).toBeDefined();
  }, 300_000);

  it("fails a build over what Lambda leaves next to the layer before any function is created, naming the largest parts", async () => {
    const outcome = await build(
      { "requirements.txt": "six==1.16.0\n", "data.bin": new Uint8Array(300_000) },
      { max: 200_000 },
    );
    expect(outcome.result.error).toMatch(
      /^plugin code is 0\.\d MiB unzipped, over the 0\.2 MiB a Lambda function has left next to its layer/,
    );
    expect(outcome.result.error).toMatch(/largest: data\.bin 0\.3 MiB/);
  }, 300_000);

  it("installs uv with pip when none is at hand, as on Lambda's managed runtime, to honour a uv.lock", async () => {
    const outcome = await build(lockedProject(["six==1.16.0"], ["six"]), { withUv: false });
    expect(outcome.result.error, outcome.result.log_tail).toBeUndefined();
    expect(outcome.installed).toEqual(["six==1.16.0"]);
  }, 300_000);
});
