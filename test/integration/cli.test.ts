import { spawn } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCore } from "../../src/app/core.js";
import { loadConfig } from "../../src/config/config.js";
import { lockDataDir } from "../../src/store/data-dir-lock.js";
import { openPgliteDatabase } from "../../src/store/pglite-database.js";
import type { CliResult, RunningCli } from "../support/cli-runner.js";
import { runCli, startCli } from "../support/cli-runner.js";

const SLOW = 180_000;
const API_KEY = /pv_test_[0-9A-Za-z]{22}_[0-9A-Za-z]{43}/;

interface KeyRowJson {
  id: string;
  tenant: string;
  env: string;
  name: string;
  scopes: string;
  created_at: string;
  revoked_at: string;
  api_key?: string;
}

function ok(result: CliResult): CliResult {
  expect(result.code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toBe(0);
  return result;
}

/** Opens the PGlite store between CLI runs, holding the data-dir lock as the CLI does. */
async function withStore<T>(
  dataDir: string,
  work: (db: Awaited<ReturnType<typeof openPgliteDatabase>>) => Promise<T>,
): Promise<T> {
  const unlock = await lockDataDir(dataDir);
  try {
    const db = await openPgliteDatabase(join(dataDir, "pgdata"));
    try {
      return await work(db);
    } finally {
      await db.close();
    }
  } finally {
    await unlock();
  }
}

describe("payvault CLI on the embedded store", () => {
  let dataDir: string;
  const cli = (...args: string[]) => runCli(args, { dataDir });
  let tenantId: string;
  let revokedKey: { id: string; secret: string };
  let activeKey: { id: string; secret: string };

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-cli-"));
  });
  afterAll(async () => rm(dataDir, { recursive: true, force: true }));

  it(
    "prints usage, and exits 2 on an unknown command",
    async () => {
      const help = ok(await cli("--help"));
      expect(help.stdout).toMatch(/Usage: payvault <command>/);
      const unknown = await cli("frobnicate");
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    },
    SLOW,
  );

  it(
    "migrate applies the schema once, then reports it up to date",
    async () => {
      const first = ok(await cli("migrate"));
      expect(first.stdout).toMatch(/applied migrations: 1\b/);
      const second = ok(await cli("migrate"));
      expect(second.stdout).toMatch(/schema is up to date/);
      // The lock is released when the command ends.
      await expect(stat(join(dataDir, "pglite.lock"))).rejects.toMatchObject({ code: "ENOENT" });
    },
    SLOW,
  );

  it(
    "tenants create and tenants list --json",
    async () => {
      const created = ok(await cli("tenants", "create", "--name", "acme", "--json"));
      const [tenant] = JSON.parse(created.stdout) as { id: string; name: string }[];
      expect(tenant).toMatchObject({
        id: expect.stringMatching(/^ten_[0-9A-Za-z]+$/),
        name: "acme",
      });
      tenantId = (tenant as { id: string }).id;
      // The first command that needs keys creates the KEK file, owner-only.
      expect((await stat(join(dataDir, "kek.json"))).mode & 0o777).toBe(0o600);
      const listed = ok(await cli("tenants", "list", "--json"));
      const tenants = JSON.parse(listed.stdout) as {
        id: string;
        name: string;
        created_at: string;
      }[];
      expect(tenants).toContainEqual({
        id: tenantId,
        name: "acme",
        retention_days: "30",
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      const noName = await cli("tenants", "create");
      expect(noName.code).toBe(2);
      expect(noName.stderr).toMatch(/--name/);
    },
    SLOW,
  );

  it(
    "apikeys create prints a pv_test_ key once; apikeys list never prints a secret",
    async () => {
      const created = ok(
        await cli(
          "apikeys",
          "create",
          "--tenant",
          tenantId,
          "--scopes",
          "tokens:read,tokens:write",
          "--env",
          "test",
          "--name",
          "ci",
          "--json",
        ),
      );
      const [row] = JSON.parse(created.stdout) as KeyRowJson[];
      expect(row).toMatchObject({
        id: expect.stringMatching(/^key_[0-9A-Za-z]{22}$/),
        tenant: tenantId,
        env: "test",
        name: "ci",
        scopes: "tokens:write,tokens:read", // in the canonical scope order
        revoked_at: "",
      });
      expect(row?.api_key).toMatch(new RegExp(`^${API_KEY.source}$`));
      expect(row?.api_key?.startsWith(`pv_test_${row.id.slice(4)}_`)).toBe(true);
      expect(created.stderr).toMatch(/shown only now/);
      revokedKey = { id: (row as KeyRowJson).id, secret: row?.api_key as string };

      const table = ok(
        await cli(
          "apikeys",
          "create",
          "--tenant",
          tenantId,
          "--scopes",
          "tokens:read",
          "--env",
          "test",
        ),
      );
      const secret = API_KEY.exec(table.stdout)?.[0];
      expect(secret).toBeDefined();
      activeKey = { id: `key_${(secret as string).split("_")[2]}`, secret: secret as string };

      for (const args of [
        ["apikeys", "list"],
        ["apikeys", "list", "--json"],
        ["apikeys", "list", "--tenant", tenantId],
      ]) {
        const listed = ok(await cli(...args));
        expect(listed.stdout).toContain(revokedKey.id);
        expect(listed.stdout).toContain(activeKey.id);
        for (const key of [revokedKey, activeKey]) {
          expect(listed.stdout).not.toContain(key.secret);
          expect(listed.stdout).not.toContain(key.secret.split("_")[3]);
        }
        expect(listed.stdout).not.toMatch(/pv_(live|test)_/);
        expect(listed.stderr).not.toMatch(/pv_(live|test)_/);
      }
      const json = JSON.parse(ok(await cli("apikeys", "list", "--json")).stdout) as KeyRowJson[];
      expect(json.every((k) => !("api_key" in k))).toBe(true);
    },
    SLOW,
  );

  it(
    "refuses unknown scopes, a bad --env and an unknown tenant with exit 2",
    async () => {
      const scope = await cli(
        "apikeys",
        "create",
        "--tenant",
        tenantId,
        "--scopes",
        "tokens:read,tokens:frobnicate",
      );
      expect(scope.code).toBe(2);
      expect(scope.stderr).toMatch(/--scopes/);
      expect(scope.stderr).toMatch(/unknown: tokens:frobnicate/);
      expect(scope.stdout).not.toMatch(/pv_(live|test)_/);
      const env = await cli(
        "apikeys",
        "create",
        "--tenant",
        tenantId,
        "--scopes",
        "tenant:admin",
        "--env",
        "staging",
      );
      expect(env.code).toBe(2);
      expect(env.stderr).toMatch(/--env/);
      const tenant = await cli(
        "apikeys",
        "create",
        "--tenant",
        "ten_nobody",
        "--scopes",
        "tenant:admin",
      );
      expect(tenant.code).toBe(2);
      expect(tenant.stderr).toMatch(/no tenant ten_nobody/);
      const listed = JSON.parse(ok(await cli("apikeys", "list", "--json")).stdout) as KeyRowJson[];
      expect(listed).toHaveLength(2);
    },
    SLOW,
  );

  it(
    "apikeys revoke revokes once; the printed keys authenticate until revoked",
    async () => {
      const revoked = ok(await cli("apikeys", "revoke", revokedKey.id));
      expect(revoked.stdout).toMatch(new RegExp(`revoked ${revokedKey.id}`));
      const again = await cli("apikeys", "revoke", revokedKey.id);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/no active key/);
      const listed = JSON.parse(ok(await cli("apikeys", "list", "--json")).stdout) as KeyRowJson[];
      expect(listed.find((k) => k.id === revokedKey.id)?.revoked_at).not.toBe("");
      expect(listed.find((k) => k.id === activeKey.id)?.revoked_at).toBe("");

      const core = await openCore(loadConfig({ PAYVAULT_DATA_DIR: dataDir }, dataDir));
      try {
        expect(await core.apiKeys.authenticate(activeKey.secret)).toMatchObject({
          ok: true,
          principal: { tenantId, keyId: activeKey.id, environment: "test" },
        });
        expect(await core.apiKeys.authenticate(revokedKey.secret)).toMatchObject({
          ok: false,
          reason: "revoked",
        });
      } finally {
        await core.close();
      }
    },
    SLOW,
  );

  it(
    "audit verify passes on an intact store and names the event after a row is edited",
    async () => {
      const intact = ok(await cli("audit", "verify"));
      const sealed = Number(
        /audit chain intact: (\d+) sealed events in \d+ seals, 0 awaiting/.exec(intact.stdout)?.[1],
      );
      const target = await withStore(dataDir, async (db) => {
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM audit_events",
        );
        expect(sealed).toBe(rows[0]?.n);
        expect(sealed).toBeGreaterThanOrEqual(4);
        const event = await db.query<{ id: string; seq: number }>(
          `SELECT e.id, s.seq FROM audit_events e
             JOIN audit_seals s ON e.txid >= s.from_txid AND e.txid < s.to_txid
            WHERE e.action = 'apikey.revoke'`,
        );
        const row = event.rows[0] as { id: string; seq: number };
        await db.query("UPDATE audit_events SET actor = 'cli:mallory' WHERE id = $1", [row.id]);
        return row;
      });
      const broken = await cli("audit", "verify");
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain(
        `audit chain BROKEN at event ${target.id} in seal ${target.seq}: row_mac_mismatch`,
      );
      const json = await cli("audit", "verify", "--json");
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({
        brokenLink: { eventId: target.id, sealSeq: target.seq, reason: "row_mac_mismatch" },
      });
    },
    SLOW,
  );

  it(
    "refuses a second process on the data directory while serve holds it",
    async () => {
      let server: RunningCli | undefined = startCli(["serve"], {
        dataDir,
        env: { PAYVAULT_PORT: "0", PAYVAULT_HOST: "127.0.0.1", PAYVAULT_LOG_LEVEL: "warn" },
        timeoutMs: SLOW,
      });
      try {
        await server.waitFor(/payvault: serving https:\/\/127\.0\.0\.1:\d+/, 120_000);
        for (const args of [["tenants", "list"], ["migrate"]]) {
          const refused = await cli(...args);
          expect(refused.code, args.join(" ")).not.toBe(0);
          expect(refused.stderr).toMatch(
            new RegExp(`in use by process ${server.pid}; stop it first`),
          );
          expect(refused.stdout).not.toContain("acme");
        }
        server.child.kill("SIGTERM");
        const stopped = await server.exited;
        server = undefined;
        expect(stopped.code).toBe(0);
        await expect(stat(join(dataDir, "pglite.lock"))).rejects.toMatchObject({ code: "ENOENT" });
        expect(ok(await cli("tenants", "list")).stdout).toContain("acme");
      } finally {
        if (server !== undefined) {
          server.child.kill("SIGKILL");
          await server.exited;
        }
      }
    },
    SLOW,
  );

  it(
    "takes over a lock left by a process that has died",
    async () => {
      const dead = spawn(process.execPath, ["-e", ""]);
      const deadPid = dead.pid as number;
      await new Promise((resolve) => dead.once("close", resolve));
      await writeFile(join(dataDir, "pglite.lock"), String(deadPid), { mode: 0o600 });
      expect(ok(await cli("tenants", "list")).stdout).toContain("acme");
      await expect(stat(join(dataDir, "pglite.lock"))).rejects.toMatchObject({ code: "ENOENT" });
    },
    SLOW,
  );
});
