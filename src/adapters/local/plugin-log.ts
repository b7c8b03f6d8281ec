/**
 * A local plugin's stderr (its SDK's log lines, tracebacks) kept in a file beside its code, so
 * an operator can read it with `logs <plugin>` from another process. Bounded: past 5 MiB the file
 * becomes `.1` and a new one starts. Writing never throws into the supervisor.
 */
import { createWriteStream, renameSync, statSync, type WriteStream } from "node:fs";
import { join } from "node:path";

export const PLUGIN_LOG_FILE = "plugin-stderr.log";
const MAX_BYTES = 5 * 1024 * 1024;

export const pluginLogPath = (directory: string): string => join(directory, PLUGIN_LOG_FILE);

export class PluginLog {
  private stream: WriteStream | undefined;
  private bytes = 0;

  constructor(private readonly path: string) {}

  write(chunk: Buffer): void {
    try {
      if (!this.stream) this.open();
      if (this.bytes + chunk.length > MAX_BYTES) {
        this.stream?.end();
        renameSync(this.path, `${this.path}.1`);
        this.open();
      }
      this.bytes += chunk.length;
      this.stream?.write(chunk);
    } catch {
      // A full disk must not take the plugin down with it.
    }
  }

  close(): void {
    this.stream?.end();
    this.stream = undefined;
  }

  private open(): void {
    let size = 0;
    try {
      size = statSync(this.path).size;
    } catch {
      size = 0;
    }
    this.bytes = size;
    this.stream = createWriteStream(this.path, { flags: "a" });
    this.stream.on("error", () => undefined);
  }
}
