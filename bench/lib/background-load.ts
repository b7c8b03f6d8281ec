/**
 * The machine's background load while a benchmark runs: every second, the whole machine's busy
 * CPU (/proc/stat), the CPU of the benchmark's own processes (this process and all its
 * descendants, plus process trees it names, e.g. a PostgreSQL that pg_ctl detached), and the CPU
 * of every other process by name. A window over a phase of the run gives "other processes' CPU"
 * (machine busy minus the benchmark's), the load averages at both ends, and the busiest others.
 *
 * Short-lived processes that start and end between two readings are not seen per process; they
 * still count in the machine's busy time, so they land in "other" when they are not ours.
 */
import { loadavg } from "node:os";
import { allProcesses, machineCpu, processTree, type StatLine } from "./proc.js";
import { round } from "./stats.js";

interface Tick {
  /** The reading before this one and this one (performance.now()). */
  fromMs: number;
  atMs: number;
  /** Seconds of CPU since the previous tick. */
  machineBusy: number;
  bench: number;
  /** Other processes' CPU seconds since the previous tick, by command name. */
  others: Map<string, number>;
  load1: number;
}

export interface LoadWindow {
  label: string;
  seconds: number;
  /** Mean busy CPU of the whole machine, in cores. */
  machineBusyCores: number;
  /** Mean CPU of the benchmark's own processes (daemons, plugins, databases, this script), in cores. */
  benchCores: number;
  /** machineBusyCores − benchCores: what the rest of the machine used. */
  otherCores: number;
  /** Peak of `otherCores` over one-second readings. */
  otherCoresMax: number;
  loadAverage1Start: number;
  loadAverage1End: number;
  loadAverage1Max: number;
  /** Busiest other processes by name (cores, mean over the window). */
  topOthers: Array<{ comm: string; cores: number }>;
}

export interface LoadSampler {
  /** Starts a window now; `end()` summarizes the readings since. */
  window(label: string): { end(): LoadWindow };
  stop(): void;
}

export function startLoadSampler(extraRoots: () => number[], intervalMs = 1000): LoadSampler {
  const ticks: Tick[] = [];
  let lastMachine = machineCpu();
  let lastCpu = new Map<number, { comm: string; cpu: number }>();
  let lastAt = performance.now();

  const benchPids = (all: StatLine[]): Set<number> => {
    const set = new Set<number>();
    for (const root of [process.pid, ...extraRoots()]) for (const s of processTree(root, all)) set.add(s.pid);
    return set;
  };

  const read = () => {
    const all = allProcesses();
    const now = performance.now();
    const machine = machineCpu();
    const mine = benchPids(all);
    const cpu = new Map(all.map((s) => [s.pid, { comm: s.comm, cpu: s.cpuSeconds }]));
    let bench = 0;
    const others = new Map<string, number>();
    for (const [pid, cur] of cpu) {
      const prev = lastCpu.get(pid);
      // A process seen for the first time counts from zero only when it began after the last reading.
      const delta = prev ? cur.cpu - prev.cpu : 0;
      if (delta <= 0) continue;
      if (mine.has(pid)) bench += delta;
      else others.set(cur.comm, (others.get(cur.comm) ?? 0) + delta);
    }
    ticks.push({
      fromMs: lastAt,
      atMs: now,
      machineBusy: machine.busySeconds - lastMachine.busySeconds,
      bench,
      others,
      load1: loadavg()[0] ?? 0,
    });
    if (ticks.length > 36_000) ticks.shift();
    lastMachine = machine;
    lastCpu = cpu;
    lastAt = now;
  };

  const timer = setInterval(read, intervalMs);
  timer.unref();

  return {
    window(label) {
      const startMs = performance.now();
      const load1Start = loadavg()[0] ?? 0;
      return {
        end() {
          read();
          const endMs = performance.now();
          // Readings taken inside the window; the first one's interval may begin up to a second before it.
          const inside = ticks.filter((t) => t.atMs > startMs && t.atMs <= endMs);
          const first = inside[0];
          const last = inside.at(-1);
          const wall = first && last ? Math.max((last.atMs - first.fromMs) / 1000, 0.001) : 0.001;
          const busy = inside.reduce((s, t) => s + t.machineBusy, 0);
          const bench = inside.reduce((s, t) => s + t.bench, 0);
          const byComm = new Map<string, number>();
          for (const t of inside) for (const [c, v] of t.others) byComm.set(c, (byComm.get(c) ?? 0) + v);
          let otherMax = 0;
          for (const t of inside) {
            const dt = Math.max((t.atMs - t.fromMs) / 1000, 0.001);
            otherMax = Math.max(otherMax, Math.max(0, t.machineBusy - t.bench) / dt);
          }
          return {
            label,
            seconds: round((endMs - startMs) / 1000, 1),
            machineBusyCores: round(busy / wall, 2),
            benchCores: round(bench / wall, 2),
            otherCores: round(Math.max(0, busy - bench) / wall, 2),
            otherCoresMax: round(otherMax, 2),
            loadAverage1Start: round(load1Start, 2),
            loadAverage1End: round(loadavg()[0] ?? 0, 2),
            loadAverage1Max: round(Math.max(load1Start, ...inside.map((t) => t.load1)), 2),
            topOthers: [...byComm]
              .sort((a, b) => b[1] - a[1])
              .slice(0, 5)
              .map(([comm, v]) => ({ comm, cores: round(v / wall, 2) })),
          };
        },
      };
    },
    stop() {
      clearInterval(timer);
    },
  };
}
