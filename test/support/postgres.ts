/**
 * A throwaway PostgreSQL server for one test file: the server programs come from
 * scripts/postgres.sh (which installs Debian's postgresql package when the machine has none),
 * the cluster is initdb'd in a temporary directory and listens on a free loopback port with
 * password authentication. As root, the server runs as the `postgres` user (it refuses root).
 */
import { execFile } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);
const script = fileURLToPath(new URL("../../scripts/postgres.sh", import.meta.url));

export const POSTGRES_USER = "postgres";
export const POSTGRES_PASSWORD = "migration-test-password";

export interface TestPostgres {
  port: number;
  /** Connection string for a database on this server. */
  url(database: string): string;
  createDatabase(name: string): Promise<void>;
  /** Runs SQL (several statements allowed) against a database. */
  exec(database: string, sql: string): Promise<void>;
  query<T extends pg.QueryResultRow = Record<string, unknown>>(
    database: string,
    sql: string,
    params?: unknown[],
  ): Promise<T[]>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const bindir = (await run("bash", [script], { timeout: 20 * 60_000, maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  const dir = mkdtempSync(join(tmpdir(), "go-daemon-postgres-"));
  const data = join(dir, "data");
  const pwfile = join(dir, "password");
  writeFileSync(pwfile, `${POSTGRES_PASSWORD}\n`);
  const asRoot = userInfo().uid === 0;
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: gid } = await run("id", ["-g", "postgres"]);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
    chownSync(pwfile, Number(stdout.trim()), Number(gid.trim()));
  }
  chmodSync(dir, 0o700);
  // The server refuses to run as root: run its programs as the postgres user then.
  const pgRun = (program: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", join(bindir, program), ...args], { cwd: dir })
      : run(join(bindir, program), args, { cwd: dir });

  await pgRun("initdb", [
    "-D",
    data,
    "-U",
    POSTGRES_USER,
    "--pwfile",
    pwfile,
    "--auth",
    "scram-sha-256",
    "-E",
    "UTF8",
    "--locale",
    "C",
    "--no-sync",
  ]);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  await pgRun("pg_ctl", ["-D", data, "-l", join(dir, "server.log"), "-o", options, "-w", "-t", "60", "start"]);

  const url = (database: string) => `postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@127.0.0.1:${port}/${database}`;
  const withClient = async <T>(database: string, use: (c: pg.Client) => Promise<T>) => {
    const client = new pg.Client({ connectionString: url(database) });
    await client.connect();
    try {
      return await use(client);
    } finally {
      await client.end();
    }
  };
  return {
    port,
    url,
    createDatabase: (name) => withClient("postgres", async (c) => void (await c.query(`CREATE DATABASE "${name}"`))),
    exec: (database, sql) => withClient(database, async (c) => void (await c.query(sql))),
    query: (database, sql, params) => withClient(database, async (c) => (await c.query(sql, params)).rows),
    async stop() {
      await pgRun("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}
