/**
 * Summarises a V8 .cpuprofile (node --cpu-prof) of the daemon under load: where the samples fall
 * (our code, dependencies by package, Node internals, GC), the top self-time functions, the top
 * self-time functions in our code, and per function of ours the time spent in it plus in the
 * non-project code it calls ("attributed"), which points at what a change in our code would save.
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { repoRoot } from "./paths.js";
import { sourceMapFor } from "./source-map.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

type Category = "ours" | "dependency" | "node" | "gc" | "idle" | "program" | "native";

interface Frame {
  key: string;
  name: string;
  where: string;
  category: Category;
  pkg?: string;
}

export interface FunctionTime {
  name: string;
  where: string;
  category: Category;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  durationMs: number;
  /** True when only the samples taken under load were counted. */
  windowed: boolean;
  sampledMs: number;
  busyMs: number;
  byCategory: Record<string, number>;
  byDependency: Array<{ pkg: string; ms: number; percent: number }>;
  topSelf: FunctionTime[];
  topSelfOurs: FunctionTime[];
  topAttributedOurs: FunctionTime[];
  topInclusiveOurs: FunctionTime[];
  /** For the hottest frames outside our code: the call paths that lead to them. */
  callersOfHotFrames: Array<{ name: string; where: string; ms: number; paths: Array<{ ms: number; path: string }> }>;
}

function packageOf(path: string): string {
  const after = path.slice(path.lastIndexOf("/node_modules/") + "/node_modules/".length);
  const parts = after.split("/");
  return (parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]) ?? "?";
}

const sources = new Map<string, string[]>();
/** The 1-based line where `name` is declared in a source file (function, method, or const arrow), if found. */
function declarationLine(path: string, name: string): number | undefined {
  if (!name || !/^[A-Za-z_$][\w$]*$/.test(name)) return undefined;
  let lines = sources.get(path);
  if (!lines) {
    try {
      lines = readFileSync(path, "utf8").split("\n");
    } catch {
      lines = [];
    }
    sources.set(path, lines);
  }
  const patterns = [
    new RegExp(`\\bfunction\\*?\\s+${name}\\s*[<(]`),
    new RegExp(`\\b(?:const|let|var)\\s+${name}\\s*=`),
    new RegExp(
      `^\\s*(?:(?:public|private|protected|static|async|readonly|override|get|set)\\s+)*\\*?\\s*${name}\\s*[<(]`,
    ),
    new RegExp(`\\b${name}\\s*[:=]\\s*(?:async\\s*)?(?:\\(|function)`),
  ];
  for (const re of patterns) {
    const index = lines.findIndex((l) => re.test(l));
    if (index !== -1) return index + 1;
  }
  return undefined;
}

function classify(node: ProfileNode): Frame {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || "(anonymous)";
  if (functionName === "(garbage collector)") return { key: name, name, where: "", category: "gc" };
  if (functionName === "(idle)") return { key: name, name, where: "", category: "idle" };
  if (functionName === "(program)" || functionName === "(root)")
    return { key: name, name, where: "", category: "program" };
  if (!url) return { key: `native:${name}`, name, where: "(V8/native)", category: "native" };
  if (url.startsWith("node:")) return { key: `${url}:${name}`, name, where: url, category: "node" };
  let path = url;
  if (url.startsWith("file://")) {
    try {
      path = fileURLToPath(url);
    } catch {
      path = url;
    }
  }
  // Bundled code: map back to the source through the bundle's source map.
  const mapped = path.endsWith(".mjs")
    ? sourceMapFor(path)?.original(lineNumber, node.callFrame.columnNumber)
    : undefined;
  if (mapped && !mapped.source.includes("/node_modules/")) {
    const rel = relative(repoRoot, mapped.source);
    const where = `${rel}:${mapped.line}`;
    return { key: `${where}:${name}`, name, where, category: rel.startsWith("..") ? "native" : "ours" };
  }
  if (mapped) path = mapped.source;
  if (path.includes("/node_modules/")) {
    const pkg = packageOf(path);
    return { key: `${pkg}:${name}:${lineNumber}`, name, where: pkg, category: "dependency", pkg };
  }
  const rel = relative(repoRoot, path);
  if (!rel.startsWith("..")) {
    // Positions are those of tsx's transformed code; name the declaration's line in the source instead.
    const line = declarationLine(path, functionName);
    const where = line ? `${rel}:${line}` : rel;
    return { key: `${rel}:${name}:${line ?? lineNumber}`, name, where, category: "ours" };
  }
  return { key: `${url}:${name}`, name, where: "(outside repo)", category: "native" };
}

/**
 * `window` (CLOCK_MONOTONIC microseconds, the clock of both V8's profile timestamps and
 * process.hrtime) limits the summary to the samples taken while load was applied, leaving out
 * start-up (module compilation) and shutdown.
 */
export function summariseProfile(file: string, window?: { fromUs: number; toUs: number }, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const inWindow = window !== undefined && window.fromUs >= profile.startTime && window.toUs <= profile.endTime;
  const byId = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frames = new Map<number, Frame>(profile.nodes.map((n) => [n.id, classify(n)]));

  // Self time per node: each sample lasts until the next one.
  const selfUs = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (inWindow && (at < window.fromUs || at > window.toUs)) continue;
    const id = profile.samples[i] as number;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const sampledUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

  const byCategory: Record<string, number> = {};
  const byPkg = new Map<string, number>();
  const selfByKey = new Map<string, { frame: Frame; us: number }>();
  const attributed = new Map<string, { frame: Frame; us: number }>();
  for (const [id, us] of selfUs) {
    const frame = frames.get(id) as Frame;
    byCategory[frame.category] = (byCategory[frame.category] ?? 0) + us;
    if (frame.pkg) byPkg.set(frame.pkg, (byPkg.get(frame.pkg) ?? 0) + us);
    const entry = selfByKey.get(frame.key) ?? { frame, us: 0 };
    entry.us += us;
    selfByKey.set(frame.key, entry);
    // Nearest frame of ours at or above this one.
    if (frame.category === "idle" || frame.category === "gc" || frame.category === "program") continue;
    let at: number | undefined = id;
    while (at !== undefined && frames.get(at)?.category !== "ours") at = parent.get(at);
    if (at !== undefined) {
      const owner = frames.get(at) as Frame;
      const a = attributed.get(owner.key) ?? { frame: owner, us: 0 };
      a.us += us;
      attributed.set(owner.key, a);
    }
  }

  // Inclusive time per function of ours (a recursive function counted once per stack).
  const inclusiveUs = new Map<number, number>();
  const inclusive = (id: number): number => {
    const cached = inclusiveUs.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id) as ProfileNode;
    let total = selfUs.get(id) ?? 0;
    for (const c of node.children ?? []) total += inclusive(c);
    inclusiveUs.set(id, total);
    return total;
  };
  const rootId = profile.nodes[0]?.id;
  if (rootId !== undefined) {
    // Iterative post-order to avoid deep recursion limits on tall stacks.
    const order: number[] = [];
    const stack = [rootId];
    while (stack.length) {
      const id = stack.pop() as number;
      order.push(id);
      for (const c of byId.get(id)?.children ?? []) stack.push(c);
    }
    for (const id of order.reverse()) inclusive(id);
  }
  const inclusiveByKey = new Map<string, { frame: Frame; us: number }>();
  const walk = (id: number, open: Set<string>) => {
    const frame = frames.get(id) as Frame;
    const fresh = frame.category === "ours" && !open.has(frame.key);
    if (fresh) {
      const e = inclusiveByKey.get(frame.key) ?? { frame, us: 0 };
      e.us += inclusiveUs.get(id) ?? 0;
      inclusiveByKey.set(frame.key, e);
      open.add(frame.key);
    }
    for (const c of byId.get(id)?.children ?? []) walk(c, open);
    if (fresh) open.delete(frame.key);
  };
  if (rootId !== undefined) walk(rootId, new Set());

  const busyUs = sampledUs - (byCategory.idle ?? 0);

  // Call paths into the hottest frames that are not ours (native writes, Node internals...).
  const hotOthers = [...selfByKey.values()]
    .filter((e) => !["ours", "idle", "gc", "program"].includes(e.frame.category))
    .sort((a, b) => b.us - a.us)
    .slice(0, 6);
  const label = (f: Frame) => (f.category === "ours" ? `${f.name} (${f.where})` : f.name);
  const callersOfHotFrames = hotOthers.map((hot) => {
    const paths = new Map<string, number>();
    for (const [id, us] of selfUs) {
      if (frames.get(id)?.key !== hot.frame.key) continue;
      const chain: string[] = [];
      let at = parent.get(id);
      // Up to the first frame of ours (or 14 frames).
      while (at !== undefined && chain.length < 14) {
        const f = frames.get(at) as Frame;
        if (f.category === "program") break;
        chain.push(label(f));
        if (f.category === "ours") break;
        at = parent.get(at);
      }
      const path = chain.join(" ← ");
      paths.set(path, (paths.get(path) ?? 0) + us);
    }
    return {
      name: hot.frame.name,
      where: hot.frame.where,
      ms: Math.round(hot.us / 100) / 10,
      paths: [...paths.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 2)
        .map(([path, us]) => ({ ms: Math.round(us / 100) / 10, path })),
    };
  });
  const toRows = (m: Map<string, { frame: Frame; us: number }>, filter: (f: Frame) => boolean): FunctionTime[] =>
    [...m.values()]
      .filter((e) => filter(e.frame))
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({
        name: e.frame.name,
        where: e.frame.where,
        category: e.frame.category,
        ms: Math.round(e.us / 100) / 10,
        percent: Math.round((e.us / busyUs) * 1000) / 10,
      }));

  return {
    durationMs: Math.round((inWindow ? window.toUs - window.fromUs : profile.endTime - profile.startTime) / 1000),
    windowed: inWindow,
    sampledMs: Math.round(sampledUs / 1000),
    busyMs: Math.round(busyUs / 1000),
    byCategory: Object.fromEntries(Object.entries(byCategory).map(([k, v]) => [k, Math.round(v / 1000)])),
    byDependency: [...byPkg.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([pkg, us]) => ({ pkg, ms: Math.round(us / 1000), percent: Math.round((us / busyUs) * 1000) / 10 })),
    topSelf: toRows(selfByKey, (f) => f.category !== "idle"),
    topSelfOurs: toRows(selfByKey, (f) => f.category === "ours"),
    topAttributedOurs: toRows(attributed, () => true),
    topInclusiveOurs: toRows(inclusiveByKey, () => true),
    callersOfHotFrames,
  };
}

export function profileMarkdown(
  s: ProfileSummary,
  context: { title: string; requests: number; describe: string },
): string {
  const pct = (ms: number) => `${((ms / s.busyMs) * 100).toFixed(1)}%`;
  const table = (rows: FunctionTime[]) =>
    [
      "| # | function | where | ms | % of busy |",
      "|---|---|---|---:|---:|",
      ...rows.map((r, i) => `| ${i + 1} | \`${r.name}\` | ${r.where} | ${r.ms} | ${r.percent} |`),
    ].join("\n");
  const cat = (k: string) => s.byCategory[k] ?? 0;
  return [
    `## ${context.title}`,
    "",
    `Daemon: \`${context.describe}\`; load: echo and stream_chunks(count=100) dispatches at concurrency 16 from bench/load.ts.`,
    `${s.windowed ? "Samples taken while load was applied (start-up and shutdown left out)" : "Whole profile"}: ${s.durationMs} ms, ${s.busyMs} ms busy (not idle), ${context.requests} requests:`,
    `${(s.busyMs / Math.max(1, context.requests)).toFixed(2)} ms of daemon main-thread CPU per request (both kinds mixed).`,
    "",
    "### Where the busy time goes",
    "",
    "| category | ms | % of busy |",
    "|---|---:|---:|",
    ...(["ours", "dependency", "node", "native", "gc", "program"] as const).map(
      (k) => `| ${k} | ${cat(k)} | ${pct(cat(k))} |`,
    ),
    "",
    "`program` is time V8 cannot attribute to JavaScript (native code of the event loop: socket and pipe I/O, HTTP parsing, compiling).",
    "",
    "Dependencies by package:",
    "",
    "| package | ms | % of busy |",
    "|---|---:|---:|",
    ...s.byDependency.map((d) => `| ${d.pkg} | ${d.ms} | ${d.percent} |`),
    "",
    "### Top self-time functions (all code)",
    "",
    table(s.topSelf),
    "",
    "### Top self-time functions in our code",
    "",
    table(s.topSelfOurs),
    "",
    "### Our functions with the non-project code they call (self + callees outside our code)",
    "",
    "Each sample outside our code is charged to the nearest function of ours on its stack.",
    "",
    table(s.topAttributedOurs),
    "",
    "### Our functions by inclusive time",
    "",
    table(s.topInclusiveOurs),
    "",
    "### Where the hottest frames outside our code are called from",
    "",
    'Callers up to the first function of ours (← reads "called by"); the two heaviest paths each.',
    "",
    ...s.callersOfHotFrames.flatMap((h) => [
      `- \`${h.name}\` ${h.where} — ${h.ms} ms`,
      ...h.paths.map((p) => `  - ${p.ms} ms: ${p.path || "(top of stack)"}`),
    ]),
    "",
  ].join("\n");
}
