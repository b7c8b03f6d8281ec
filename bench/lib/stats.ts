/** Small statistics helpers for latency samples (milliseconds). */

export interface Percentiles {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
function rank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, x) => s + x, 0);
  return {
    count: sorted.length,
    min: round(sorted[0] ?? Number.NaN),
    mean: round(sorted.length ? sum / sorted.length : Number.NaN),
    p50: round(rank(sorted, 50)),
    p90: round(rank(sorted, 90)),
    p99: round(rank(sorted, 99)),
    max: round(sorted.at(-1) ?? Number.NaN),
  };
}

export const round = (n: number, digits = 2): number => {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

export const median = (xs: readonly number[]): number =>
  rank(
    [...xs].sort((a, b) => a - b),
    50,
  );
