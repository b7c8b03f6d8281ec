/**
 * When a crashed plugin is started again. The first restart comes quickly (a killed plugin is
 * back within a fraction of a second, as upstream brings one back within its 5 s health tick);
 * each further crash inside the window doubles the wait, and a plugin that crashes too often in
 * the window is declared crash-looping: calls are refused with the reason until a cooldown has
 * passed, so a plugin that dies at import does not burn a core restarting.
 */
export interface RestartPolicy {
  firstDelayMs: number;
  maxDelayMs: number;
  /** This many crashes inside `windowMs` make a crash loop. */
  crashLoopCrashes: number;
  windowMs: number;
  /** How long a crash-looping plugin is left stopped before a call may try it again. */
  cooldownMs: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  firstDelayMs: 100,
  maxDelayMs: 5_000,
  crashLoopCrashes: 5,
  windowMs: 60_000,
  cooldownMs: 30_000,
};

export type RestartDecision = { kind: "restart"; delayMs: number } | { kind: "crash-loop"; untilMs: number };

/** The crash history of one plugin, and what to do after the next crash. */
export class CrashHistory {
  private crashes: number[] = [];

  constructor(private readonly policy: RestartPolicy = defaultRestartPolicy) {}

  /** Records a crash at `nowMs` and decides what follows it. */
  crashed(nowMs: number): RestartDecision {
    this.crashes = [...this.crashes.filter((t) => nowMs - t < this.policy.windowMs), nowMs];
    if (this.crashes.length >= this.policy.crashLoopCrashes) {
      this.crashes = [];
      return { kind: "crash-loop", untilMs: nowMs + this.policy.cooldownMs };
    }
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.firstDelayMs * 2 ** (this.crashes.length - 1));
    return { kind: "restart", delayMs };
  }

  /** Crashes recorded in the current window. */
  get recent(): number {
    return this.crashes.length;
  }
}
