/** The migration's outcome: counts per kind, what was skipped and why, which runtimes are ready. */
import { KINDS, type Kind, type NotCarried, type Skip } from "./mapping.js";

export interface KindCounts {
  /** Written by this run (in a dry run: would be written). */
  migrated: number;
  /** Already in the target with the same id or identifier: left as it is. */
  present: number;
  skipped: number;
}

export interface RuntimeStatus {
  plugin_unique_identifier: string;
  /** Tenants whose installation uses it. */
  tenants: number;
  ready: boolean;
  /** Prepared by this run (--prepare). */
  prepared: boolean;
  error?: string;
}

export interface MigrationReport {
  dry_run: boolean;
  source: { database: string; storage: string };
  target: string;
  counts: Record<Kind, KindCounts>;
  skipped: Skip[];
  not_carried: NotCarried[];
  runtimes: RuntimeStatus[];
}

export function emptyCounts(): Record<Kind, KindCounts> {
  return Object.fromEntries(KINDS.map((k) => [k, { migrated: 0, present: 0, skipped: 0 }])) as Record<Kind, KindCounts>;
}

/** Human-readable report, as the command prints it without --json. */
export function formatReport(report: MigrationReport, prepareRequested: boolean): string {
  const lines: string[] = [];
  lines.push(report.dry_run ? "Dry run: nothing was written." : "Migration finished.");
  lines.push(`  from ${report.source.database}`);
  lines.push(`       ${report.source.storage}`);
  lines.push(`  to   ${report.target}`);
  lines.push("");
  const verb = report.dry_run ? "would migrate" : "migrated";
  const width = Math.max(...KINDS.map((k) => k.length));
  lines.push(`  ${"kind".padEnd(width)}  ${verb.padStart(13)}  already there  skipped`);
  for (const kind of KINDS) {
    const c = report.counts[kind];
    lines.push(
      `  ${kind.padEnd(width)}  ${String(c.migrated).padStart(13)}  ${String(c.present).padStart(13)}  ${String(c.skipped).padStart(7)}`,
    );
  }
  if (report.skipped.length > 0) {
    lines.push("", "Skipped:");
    for (const s of report.skipped) lines.push(`  - ${s.item}: ${s.reason}`);
  }
  if (report.not_carried.length > 0) {
    lines.push("", "Not carried over:");
    for (const n of report.not_carried) lines.push(`  - ${n.table} (${n.rows} rows): ${n.reason}`);
  }
  if (report.runtimes.length > 0) {
    lines.push("", "Plugin runtimes:");
    for (const r of report.runtimes) {
      const state = r.ready
        ? r.prepared
          ? "ready (prepared now)"
          : "ready"
        : r.error
          ? `FAILED: ${r.error}`
          : report.dry_run && prepareRequested
            ? "would be prepared"
            : "not prepared";
      lines.push(`  - ${r.plugin_unique_identifier} (${r.tenants} tenant${r.tenants === 1 ? "" : "s"}): ${state}`);
    }
    if (!prepareRequested && report.runtimes.some((r) => !r.ready)) {
      lines.push("  Run again with --prepare to prepare them (plugins answer only once prepared).");
    }
  }
  return lines.join("\n");
}
