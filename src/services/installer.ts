/**
 * Installs, upgrades and uninstalls plugins for tenants through install tasks.
 * An installation is written only after the plugin runtime is ready, so a record never claims
 * a plugin that cannot run; an upgrade swaps the identifier only after the new runtime is ready,
 * so a failed upgrade leaves the old version installed and running.
 */
import { v4 as uuidv4, v7 as uuidv7 } from "uuid";
import { badRequest, notFound } from "../domain/errors.js";
import { identifierParts, type PluginUniqueIdentifier } from "../domain/identifier.js";
import {
  abandon,
  type InstallTask,
  isOverdue,
  newInstallTask,
  type TaskStatus,
  updatePlugin,
} from "../domain/install-task.js";
import { logger } from "../logger.js";
import { metrics, secondsSince } from "../observability/metrics.js";
import type { InstallQueue } from "../ports/install-queue.js";
import { ConditionFailedError } from "../ports/item-store.js";
import type { Marketplace } from "../ports/marketplace.js";
import type { PluginRuntime } from "../ports/plugin-runtime.js";
import { untilAborted } from "../shared/until-aborted.js";
import type { InstallJob, InstallTasks, StoredTask } from "../stores/install-tasks.js";
import type { Installation, Installations, StoredInstallation } from "../stores/installations.js";
import type { PackageRecords } from "../stores/package-records.js";
import type { RuntimeClaims } from "../stores/runtime-claims.js";
import type { PackageIntake } from "./package-intake.js";

export interface InstallStart {
  all_installed: boolean;
  task_id: string;
}

export interface InstallerDeps {
  packages: PackageRecords;
  intake: PackageIntake;
  installations: Installations;
  tasks: InstallTasks;
  runtime: PluginRuntime;
  marketplace: Marketplace;
  queue: InstallQueue;
  runtimeType: Installation["runtime_type"];
  claims: RuntimeClaims;
  /** PLUGIN_INSTALL_TIMEOUT: one plugin's install is stopped and failed after this long. */
  installTimeoutMs: number;
}

/** Tasks are reported failed this long after their install timeout if nothing ended them. */
const OVERDUE_GRACE_MS = 60_000;
const INTERRUPTED = "the plugin daemon stopped while this install was running; install the plugin again";

export class Installer {
  constructor(private readonly deps: InstallerDeps) {}

  async installFromIdentifiers(
    tenantId: string,
    identifiers: PluginUniqueIdentifier[],
    source: string,
    metas: Array<Record<string, unknown>>,
  ): Promise<InstallStart> {
    const ids = identifiers.map(identifierParts);
    const installed = await Promise.all(ids.map((id) => this.deps.installations.get(tenantId, id.pluginId)));
    // Upstream counts a plugin as installed by plugin id, whatever the version (Dify upgrades explicitly).
    if (installed.every(Boolean)) return { all_installed: true, task_id: "" };
    const job: InstallJob = {
      kind: "install",
      source,
      plugins: ids.map((id, i) => ({ unique_identifier: id.raw, meta: metas[i] ?? {} })),
    };
    return { all_installed: false, task_id: await this.startTask(tenantId, job) };
  }

  async upgrade(
    tenantId: string,
    originalIdentifier: PluginUniqueIdentifier,
    newIdentifier: PluginUniqueIdentifier,
    source: string,
    meta: Record<string, unknown>,
  ): Promise<InstallStart> {
    const original = identifierParts(originalIdentifier);
    const next = identifierParts(newIdentifier);
    if (original.pluginId !== next.pluginId) throw badRequest("original and new plugin must be the same plugin");
    if (original.raw === next.raw) throw badRequest("original and new plugin unique identifier are the same");
    const current = await this.deps.installations.get(tenantId, original.pluginId);
    if (!current || current.installation.plugin_unique_identifier !== original.raw) {
      throw notFound("plugin installation not found");
    }
    const swapped = await this.upgradeToRunningVersion(current, next.raw, source, meta);
    if (swapped) return swapped;
    const job: InstallJob = {
      kind: "upgrade",
      source,
      plugins: [{ unique_identifier: next.raw, meta, original_unique_identifier: original.raw }],
    };
    return { all_installed: false, task_id: await this.startTask(tenantId, job) };
  }

  /**
   * Upstream upgrades without a task when the new version is already installed for some tenant
   * (internal/service/install_plugin.go UpgradePlugin, langgenius/dify-plugin-daemon@bdb5642a):
   * its runtime is ready, so the installation is swapped at once. Undefined when it is not.
   */
  private async upgradeToRunningVersion(
    current: StoredInstallation,
    uid: PluginUniqueIdentifier,
    source: string,
    meta: Record<string, unknown>,
  ): Promise<InstallStart | undefined> {
    if ((await this.deps.packages.users(uid)).length === 0) return undefined;
    const tenantId = current.installation.tenant_id;
    // The claim keeps the last other tenant's uninstall from removing the runtime meanwhile.
    await this.deps.claims.claim(uid, tenantId);
    let previous: PluginUniqueIdentifier;
    try {
      if (!(await this.deps.runtime.isInstalled(uid))) return undefined;
      previous = await this.swap(current, uid, source, meta, new Date().toISOString());
    } finally {
      await this.deps.claims.settle(uid, tenantId);
    }
    // As upstream, the old version drains and goes after the answer.
    this.releaseIfUnused(previous).catch((err: Error) =>
      logger.warn({ uid: previous, err: err.message }, "failed to release the version upgraded from"),
    );
    return { all_installed: true, task_id: "" };
  }

  /** Idempotent like upstream: uninstalling a missing installation still answers true. */
  async uninstall(tenantId: string, installationId: string): Promise<void> {
    const installation = await this.deps.installations.findById(installationId);
    if (!installation || installation.tenant_id !== tenantId) return;
    if (!(await this.deps.installations.remove(installation))) return;
    await this.releaseIfUnused(installation.plugin_unique_identifier);
  }

  /** Carries out a task created by installFromIdentifiers/upgrade (called by the install queue). */
  async runTask(tenantId: string, taskId: string): Promise<void> {
    const stored = await this.deps.tasks.get(tenantId, taskId);
    if (!stored) return;
    const progress = new TaskProgress(this.deps.tasks, stored);
    for (const plugin of stored.job.plugins) {
      const uid = plugin.unique_identifier;
      const timeout = new AbortController();
      const minutes = this.deps.installTimeoutMs / 60_000;
      const timer = setTimeout(
        () => timeout.abort(new Error(`install timed out after ${minutes} minutes (PLUGIN_INSTALL_TIMEOUT)`)),
        this.deps.installTimeoutMs,
      );
      const started = performance.now();
      let status: "success" | "failed" = "failed";
      try {
        await progress.set(uid, "running", "starting");
        const outcome = await untilAborted(
          this.installOne(tenantId, stored.job, plugin, (line) => progress.note(uid, line), timeout.signal),
          timeout.signal,
        );
        await progress.set(uid, "success", outcome.message);
        status = "success";
        // The old version of an upgrade drains and goes after the task already says success.
        await outcome.afterwards?.();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        logger.warn({ tenantId, taskId, uid, err: message }, "plugin install failed");
        status = "failed";
        await progress.set(uid, "failed", message);
      } finally {
        clearTimeout(timer);
        metrics.installFinished({
          kind: stored.job.kind,
          pluginId: identifierParts(uid).pluginId,
          status,
          seconds: secondsSince(started),
        });
      }
    }
    await progress.flush();
  }

  /**
   * A task as Dify reads it: one that outlived its install timeout (its worker died with a
   * Lambda timeout or a daemon crash) reads as failed instead of running forever.
   */
  async task(tenantId: string, taskId: string): Promise<StoredTask | undefined> {
    const stored = await this.deps.tasks.get(tenantId, taskId);
    if (!stored || !isOverdue(stored.task, new Date(), this.deps.installTimeoutMs + OVERDUE_GRACE_MS)) return stored;
    return this.failTask(
      stored,
      `the install did not finish within ${this.deps.installTimeoutMs / 60_000} minutes (PLUGIN_INSTALL_TIMEOUT); its worker stopped`,
    );
  }

  async tasks(tenantId: string): Promise<InstallTask[]> {
    const limit = this.deps.installTimeoutMs + OVERDUE_GRACE_MS;
    const now = new Date();
    return Promise.all(
      (await this.deps.tasks.list(tenantId)).map(async (task) =>
        isOverdue(task, now, limit) ? ((await this.task(tenantId, task.id))?.task ?? task) : task,
      ),
    );
  }

  /**
   * At start-up of a daemon that runs installs in-process: every task still unfinished was
   * interrupted by the previous process's death and is failed with a message that says so.
   */
  async failInterrupted(): Promise<number> {
    const active = await this.deps.tasks.active();
    await Promise.all(active.map((stored) => this.failTask(stored, INTERRUPTED)));
    return active.length;
  }

  private async failTask(stored: StoredTask, message: string): Promise<StoredTask> {
    const unsettled = stored.task.plugins.filter((p) => p.status === "pending" || p.status === "running");
    try {
      const saved = await this.deps.tasks.save(stored, abandon(stored.task, message, new Date()));
      await Promise.all(
        unsettled.map((p) => this.deps.claims.settle(p.plugin_unique_identifier, stored.task.tenant_id)),
      );
      return saved;
    } catch (err) {
      if (!(err instanceof ConditionFailedError)) throw err;
      // Someone wrote it meanwhile (its worker is alive after all): theirs is the truth.
      return (await this.deps.tasks.get(stored.task.tenant_id, stored.task.id)) ?? stored;
    }
  }

  private async startTask(tenantId: string, job: InstallJob): Promise<string> {
    const plugins = await Promise.all(
      job.plugins.map(async (p) => {
        const id = identifierParts(p.unique_identifier);
        const record = await this.deps.packages.get(id.raw);
        if (!record && !isDownloadable(job.source)) {
          throw badRequest(`plugin package ${id.raw} not found, upload it first`);
        }
        const d = record?.declaration;
        return {
          plugin_unique_identifier: id.raw,
          plugin_id: id.pluginId,
          icon: d?.icon ?? "",
          icon_dark: d?.icon_dark ?? "",
          labels: (d?.label as InstallTask["plugins"][number]["labels"] | undefined) ?? { en_US: id.pluginId },
          source: job.source,
        };
      }),
    );
    const task = newInstallTask(uuidv7(), tenantId, plugins, new Date());
    await this.deps.tasks.create(task, job);
    await this.deps.queue.enqueue({ tenantId, taskId: task.id });
    return task.id;
  }

  private async installOne(
    tenantId: string,
    job: InstallJob,
    plugin: InstallJob["plugins"][number],
    note: (line: string) => void,
    signal: AbortSignal,
  ): Promise<{ message: string; afterwards?: () => Promise<void> }> {
    const id = identifierParts(plugin.unique_identifier);
    const existing = await this.deps.installations.get(tenantId, id.pluginId);
    if (job.kind === "install" && existing) return { message: "installed" };
    if (job.kind === "upgrade") {
      if (!existing || existing.installation.plugin_unique_identifier !== plugin.original_unique_identifier) {
        throw notFound("plugin installation not found");
      }
    }
    await this.ensurePackage(id.raw, job.source, plugin.meta, note);
    const record = await this.deps.packages.get(id.raw);
    if (!record) throw badRequest(`plugin package ${id.raw} not found`);
    // The claim keeps an uninstall in another tenant from removing the runtime this install relies on.
    await this.deps.claims.claim(id.raw, tenantId);
    try {
      if (!(await this.deps.runtime.isInstalled(id.raw))) {
        // Read from the blob store only if the runtime asks: the Lambda runtime builds from the stored package.
        const archive = () => this.deps.intake.archiveOf(id.raw);
        await this.deps.runtime.install(
          { uniqueIdentifier: id.raw, declaration: record.declaration, archive },
          note,
          signal,
        );
      }
      // A timed-out install must not write an installation after its task said it failed.
      signal.throwIfAborted();
      const now = new Date().toISOString();
      if (job.kind === "upgrade" && existing) {
        const previous = await this.swap(existing, id.raw, job.source, plugin.meta, now);
        return { message: "upgraded", afterwards: () => this.releaseIfUnused(previous) };
      }
      const installation: Installation = {
        id: uuidv4(),
        tenant_id: tenantId,
        plugin_id: id.pluginId,
        plugin_unique_identifier: id.raw,
        runtime_type: this.deps.runtimeType,
        source: job.source,
        meta: plugin.meta,
        endpoints_setups: 0,
        endpoints_active: 0,
        created_at: now,
        updated_at: now,
      };
      // Losing this race to a concurrent install of the same plugin is fine: it is installed.
      await this.deps.installations.create(installation);
      return { message: "installed" };
    } finally {
      await this.deps.claims.settle(id.raw, tenantId);
    }
  }

  /** Switches the installation to `uid`; returns the identifier it had. */
  private async swap(
    current: StoredInstallation,
    uid: PluginUniqueIdentifier,
    source: string,
    meta: Record<string, unknown>,
    now: string,
  ): Promise<PluginUniqueIdentifier> {
    const previous = current.installation.plugin_unique_identifier;
    try {
      await this.deps.installations.replace(current, {
        ...current.installation,
        plugin_unique_identifier: uid,
        source,
        meta,
        updated_at: now,
      });
    } catch (err) {
      if (err instanceof ConditionFailedError)
        throw badRequest("the installation changed during the upgrade, try again");
      throw err;
    }
    return previous;
  }

  private async ensurePackage(
    uid: PluginUniqueIdentifier,
    source: string,
    meta: Record<string, unknown>,
    note: (l: string) => void,
  ) {
    if (await this.deps.packages.get(uid)) return;
    let bytes: Uint8Array;
    if (source === "marketplace") {
      note("downloading plugin package from the marketplace");
      bytes = await this.deps.marketplace.downloadPackage(uid);
    } else if (source === "github") {
      const repo = String(meta.repo ?? "");
      const release = String(meta.version ?? meta.release ?? "");
      const asset = String(meta.package ?? "");
      if (!repo || !release || !asset) throw badRequest("github source needs meta.repo, meta.version and meta.package");
      note(`downloading ${asset} from github ${repo}@${release}`);
      bytes = await this.deps.marketplace.downloadGithubRelease(repo, release, asset);
    } else {
      throw badRequest(`plugin package ${uid} not found, upload it first`);
    }
    await this.deps.intake.accept(bytes, false, uid);
  }

  /** Removes the shared runtime once no tenant has it installed or is installing it. */
  private async releaseIfUnused(uid: PluginUniqueIdentifier): Promise<void> {
    const removal = await this.deps.claims.beginRemovalIfUnused(uid);
    if (!removal) return;
    try {
      await this.deps.runtime.remove(uid);
    } catch (err) {
      logger.warn({ uid, err: (err as Error).message }, "failed to remove an unused plugin runtime");
    } finally {
      await this.deps.claims.removalDone(uid, removal);
    }
  }
}

const NOTE_INTERVAL_MS = 1000;

const isDownloadable = (source: string) => source === "marketplace" || source === "github";

/**
 * Writes a task's progress, one write at a time, re-reading on a conflicting write so a
 * concurrent delete or update is never overwritten blindly.
 */
class TaskProgress {
  private chain: Promise<void> = Promise.resolve();
  private lastNoteAt = 0;

  constructor(
    private readonly tasks: InstallTasks,
    private stored: StoredTask | undefined,
  ) {}

  set(uid: string, status: TaskStatus, message: string): Promise<void> {
    this.chain = this.chain
      .catch(() => undefined)
      .then(() => this.write((task) => updatePlugin(task, uid, status, message, new Date())));
    return this.chain;
  }

  /**
   * Progress lines only update the message of a running plugin, at most once a second: an
   * installer prints hundreds of lines, and each write is a table write. Failures to write them
   * are not fatal.
   */
  note(uid: string, line: string): void {
    const now = Date.now();
    if (now - this.lastNoteAt < NOTE_INTERVAL_MS) return;
    this.lastNoteAt = now;
    this.set(uid, "running", line).catch(() => undefined);
  }

  flush(): Promise<void> {
    return this.chain;
  }

  private async write(change: (task: InstallTask) => InstallTask): Promise<void> {
    for (let attempt = 0; attempt < 5 && this.stored; attempt++) {
      try {
        this.stored = await this.tasks.save(this.stored, change(this.stored.task));
        return;
      } catch (err) {
        if (!(err instanceof ConditionFailedError)) throw err;
        this.stored = await this.tasks.get(this.stored.task.tenant_id, this.stored.task.id);
      }
    }
  }
}
