/**
 * The event-loop delay GET /metrics reports: sampled from the daemon's first piece of work until
 * a quiet period after its last, so that an idle daemon is never woken for it, and a loop blocked
 * while busy shows in the gauges under prom-client's names.
 */
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import {
  EVENT_LOOP_METRICS,
  type EventLoopDelayMonitor,
  monitorEventLoopDelayWhileBusy,
} from "../../src/observability/event-loop-delay.js";
import { createPrometheusExporter } from "../../src/observability/prometheus-exporter.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const blockFor = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};
const gaugeValue = async (registry: Registry, name: string) =>
  ((await registry.getSingleMetric(name)?.get())?.values[0]?.value ?? Number.NaN) as number;

let monitor: EventLoopDelayMonitor | undefined;
afterEach(() => monitor?.stop());

describe("event-loop delay", () => {
  it("is not sampled before any work, and reads 0 then", async () => {
    const registry = new Registry();
    monitor = monitorEventLoopDelayWhileBusy(registry, { resolutionMs: 5, quietMs: 100 });
    await sleep(30);
    expect(monitor.sampling).toBe(false);
    await registry.metrics();
    expect(await gaugeValue(registry, EVENT_LOOP_METRICS.max)).toBe(0);
    expect(await gaugeValue(registry, EVENT_LOOP_METRICS.p99)).toBe(0);
  });

  it("shows a loop blocked while busy, then stops sampling once quiet", async () => {
    const registry = new Registry();
    monitor = monitorEventLoopDelayWhileBusy(registry, { resolutionMs: 5, quietMs: 150 });
    monitor.busy();
    await sleep(20);
    blockFor(80);
    await sleep(20);
    await registry.metrics();
    expect(await gaugeValue(registry, EVENT_LOOP_METRICS.max)).toBeGreaterThanOrEqual(0.07);
    // Reset at the scrape: the next one sees only what came after.
    await sleep(30);
    await registry.metrics();
    expect(await gaugeValue(registry, EVENT_LOOP_METRICS.max)).toBeLessThan(0.07);
    await sleep(250);
    expect(monitor.sampling).toBe(false);
  });

  it("goes on sampling while work keeps coming within the quiet period", async () => {
    const registry = new Registry();
    monitor = monitorEventLoopDelayWhileBusy(registry, { resolutionMs: 5, quietMs: 150 });
    for (let i = 0; i < 6; i++) {
      monitor.busy();
      await sleep(60);
      expect(monitor.sampling).toBe(true);
    }
    await sleep(250);
    expect(monitor.sampling).toBe(false);
    monitor.busy();
    expect(monitor.sampling).toBe(true);
  });

  it("keeps prom-client's metric names among the process metrics, each once", async () => {
    const { body } = await createPrometheusExporter({ runtimeType: "local" }).scrape();
    for (const name of Object.values(EVENT_LOOP_METRICS)) {
      expect(body.match(new RegExp(`^# TYPE ${name} gauge$`, "gm")), name).toHaveLength(1);
    }
    expect(body).toMatch(/^nodejs_heap_space_size_used_bytes\{space="old"\} \d+/m);
  });
});
