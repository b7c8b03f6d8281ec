/**
 * Linux /proc readings for the processes under test: the process tree below a daemon, resident
 * memory (VmRSS) and CPU time (utime + stime) per process, split into the daemon's own processes
 * and its Python plugin processes.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;
/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (almost always 100). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface StatLine {
  pid: number;
  comm: string;
  ppid: number;
  /** CPU seconds (user + system) so far. */
  cpuSeconds: number;
}

function readStat(pid: number): StatLine | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may itself contain spaces or parentheses.
    const open = text.indexOf("(");
    const close = text.lastIndexOf(")");
    const comm = text.slice(open + 1, close);
    const fields = text.slice(close + 2).split(" ");
    // fields[0] is state (field 3 of the man page); ppid is field 4, utime 14, stime 15.
    const ppid = Number(fields[1]);
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return { pid, comm, ppid, cpuSeconds: (utime + stime) / clockTicks() };
  } catch {
    return undefined;
  }
}

export function rssBytes(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Proportional set size (Pss in /proc/<pid>/smaps_rollup): shared pages divided among their users. */
export function pssBytes(pid: number): number | undefined {
  try {
    const kb = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** Every process on the machine, with its stat line. */
export function allProcesses(): StatLine[] {
  const all: StatLine[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat) all.push(stat);
  }
  return all;
}

/** The process and all its descendants, with their stat lines (from `all`, or a fresh reading). */
export function processTree(root: number, all: StatLine[] = allProcesses()): StatLine[] {
  const children = new Map<number, StatLine[]>();
  for (const s of all) {
    const list = children.get(s.ppid) ?? [];
    list.push(s);
    children.set(s.ppid, list);
  }
  const rootStat = all.find((s) => s.pid === root);
  if (!rootStat) return [];
  const out: StatLine[] = [];
  const queue = [rootStat];
  while (queue.length) {
    const s = queue.shift() as StatLine;
    out.push(s);
    queue.push(...(children.get(s.pid) ?? []));
  }
  return out;
}

const isPython = (s: StatLine) => s.comm.startsWith("python");

export interface TreeSample {
  /** RSS of the process that serves HTTP (for `tsx`, the node child of the launcher). */
  daemonRss: number;
  /** RSS of other non-Python processes in the tree (launchers such as the tsx CLI). */
  launcherRss: number;
  /** Sum of RSS of the Python plugin processes. */
  pluginRss: number;
  pluginProcesses: number;
  daemonCpuSeconds: number;
  launcherCpuSeconds: number;
  pluginCpuSeconds: number;
}

/** One reading of a daemon's tree; `servingPid` picks the HTTP-serving process out of it. */
export function sampleTree(root: number, servingPid: number): TreeSample {
  const tree = processTree(root);
  const sample: TreeSample = {
    daemonRss: 0,
    launcherRss: 0,
    pluginRss: 0,
    pluginProcesses: 0,
    daemonCpuSeconds: 0,
    launcherCpuSeconds: 0,
    pluginCpuSeconds: 0,
  };
  for (const s of tree) {
    const rss = rssBytes(s.pid) ?? 0;
    if (isPython(s)) {
      sample.pluginRss += rss;
      sample.pluginProcesses += 1;
      sample.pluginCpuSeconds += s.cpuSeconds;
    } else if (s.pid === servingPid) {
      sample.daemonRss += rss;
      sample.daemonCpuSeconds += s.cpuSeconds;
    } else {
      sample.launcherRss += rss;
      sample.launcherCpuSeconds += s.cpuSeconds;
    }
  }
  return sample;
}

export interface MemoryPeak {
  daemonRssMax: number;
  daemonRssMean: number;
  pluginRssMax: number;
  pluginRssMean: number;
  samples: number;
}

/** Calls `sample` every `intervalMs` until stopped; returns the RSS maxima and means. */
export function startMemorySampler(sample: () => TreeSample, intervalMs = 100): { stop(): MemoryPeak } {
  const daemon: number[] = [];
  const plugin: number[] = [];
  const take = () => {
    const s = sample();
    daemon.push(s.daemonRss);
    plugin.push(s.pluginRss);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      return {
        daemonRssMax: Math.max(...daemon),
        daemonRssMean: mean(daemon),
        pluginRssMax: Math.max(...plugin),
        pluginRssMean: mean(plugin),
        samples: daemon.length,
      };
    },
  };
}

/** Adds up samples of several trees (a daemon and plugin processes it did not start). */
export function mergeSamples(samples: TreeSample[]): TreeSample {
  const total: TreeSample = {
    daemonRss: 0,
    launcherRss: 0,
    pluginRss: 0,
    pluginProcesses: 0,
    daemonCpuSeconds: 0,
    launcherCpuSeconds: 0,
    pluginCpuSeconds: 0,
  };
  for (const s of samples) for (const k of Object.keys(total) as Array<keyof TreeSample>) total[k] += s[k];
  return total;
}

/** Sends `signal` to every process of a tree (deepest first), ignoring ones already gone. */
export function signalTree(root: number, signal: NodeJS.Signals): void {
  for (const s of processTree(root).reverse()) {
    try {
      process.kill(s.pid, signal);
    } catch {
      // already exited
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const MiB = 1024 * 1024;

/** CPU seconds the whole machine spent busy and in total (all cores) since boot, from /proc/stat. */
export function machineCpu(): { busySeconds: number; totalSeconds: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const [, ...fields] = line.trim().split(/\s+/);
  const n = fields.map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const idle = (n[3] ?? 0) + (n[4] ?? 0);
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busySeconds: (total - idle) / clockTicks(), totalSeconds: total / clockTicks() };
}
