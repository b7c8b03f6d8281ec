import { describe, expect, it } from "vitest";
import { CrashHistory, type RestartPolicy } from "../../src/domain/restart-policy.js";

const policy: RestartPolicy = {
  firstDelayMs: 100,
  maxDelayMs: 1000,
  crashLoopCrashes: 4,
  windowMs: 10_000,
  cooldownMs: 30_000,
};

describe("when a crashed plugin starts again", () => {
  it("restarts quickly at first and doubles the wait with each crash inside the window, up to the cap", () => {
    const history = new CrashHistory({ ...policy, crashLoopCrashes: 10 });
    expect([0, 1, 2, 3, 4, 5].map((t) => history.crashed(t * 100))).toEqual(
      [100, 200, 400, 800, 1000, 1000].map((delayMs) => ({ kind: "restart", delayMs })),
    );
  });

  it("declares a crash loop after too many crashes in the window, with a cooldown", () => {
    const history = new CrashHistory(policy);
    for (const t of [0, 1000, 2000]) expect(history.crashed(t).kind).toBe("restart");
    expect(history.crashed(3000)).toEqual({ kind: "crash-loop", untilMs: 33_000 });
    // After the cooldown a plugin starts with a clean history.
    expect(history.crashed(40_000)).toEqual({ kind: "restart", delayMs: 100 });
  });

  it("forgets crashes older than the window", () => {
    const history = new CrashHistory(policy);
    for (const t of [0, 1000, 2000]) history.crashed(t);
    expect(history.crashed(15_000)).toEqual({ kind: "restart", delayMs: 100 });
    expect(history.recent).toBe(1);
  });
});
