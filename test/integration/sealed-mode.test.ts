import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Core } from "../../src/app/core.js";
import { openCore } from "../../src/app/core.js";
import type { Config } from "../../src/config/config.js";
import { loadConfig } from "../../src/config/config.js";
import type { ErrorCode } from "../../src/errors/registry.js";
import type { KeyContext } from "../../src/keys/key-manager.js";
import { kekOf, VaultSealedError } from "../../src/keys/key-manager.js";
import { KekFileError, LocalKeyManager } from "../../src/keys/local-key-manager.js";
import type { SealStatus, UnsealErrorCode } from "../../src/keys/seal.js";
import { UNSEAL_LOCKOUT_MS, UNSEAL_MAX_FAILURES, UnsealError } from "../../src/keys/seal.js";
import { decodeShare, encodeShare } from "../../src/keys/unseal-share.js";
import { createLogger } from "../../src/log/logger.js";
import type { RunningServer } from "../../src/server.js";
import { startServer } from "../../src/server.js";
import { verifyAuditChain } from "../../src/services/audit/audit-verify.js";
import { CARDS, expectProblem, tokenizeBody } from "../support/api-fixtures.js";
import type { CliResult } from "../support/cli-runner.js";
import { REPO_ROOT, runCli } from "../support/cli-runner.js";
import type { Driver, TestDatabase } from "../support/databases.js";
import { DRIVERS } from "../support/databases.js";
import { LogCapture } from "../support/vault-harness.js";

const CONTEXT: KeyContext = {
  dekId: "dek_sealed",
  owner: "ten_sealed",
  purpose: "pan",
  environment: "live",
};
const SLOW = 120_000;

// --- Share helpers -------------------------------------------------------------------------

/** The same share with one value byte flipped: well-formed, right set, wrong value. */
function wrongValue(share: string): string {
  const decoded = decodeShare(share);
  const value = Buffer.from(decoded.value);
  value[0] = (value[0] as number) ^ 0x5a;
  return encodeShare({ ...decoded, value });
}

/** One character of the value changed: the checksum no longer matches. */
function mangled(share: string): string {
  const parts = share.split(".");
  const value = parts[4] as string;
  const swapped = value[3] === "A" ? "B" : "A";
  parts[4] = `${value.slice(0, 3)}${swapped}${value.slice(4)}`;
  return parts.join(".");
}

/** The secret parts of a share (the whole text and its value), which no message may contain. */
function secretsOf(share: string): string[] {
  return [share, share.split(".")[4] as string];
}

function unsealError(run: () => unknown): UnsealError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UnsealError);
    return err as UnsealError;
  }
  throw new Error("expected an UnsealError");
}

function expectRefused(
  manager: LocalKeyManager,
  share: string,
  code: UnsealErrorCode,
  secrets: readonly string[] = secretsOf(share),
): UnsealError {
  const err = unsealError(() => manager.submitShare(share));
  expect(err.code).toBe(code);
  expect(err.message.length).toBeGreaterThan(0);
  for (const secret of secrets) expect(err.message).not.toContain(secret);
  return err;
}

function combinations(n: number, k: number): number[][] {
  if (k === 0) return [[]];
  const out: number[][] = [];
  for (let first = 0; first <= n - k; first++) {
    for (const rest of combinations(n - first - 1, k - 1)) {
      out.push([first, ...rest.map((i) => i + first + 1)]);
    }
  }
  return out;
}

// --- LocalKeyManager in sealed mode --------------------------------------------------------

describe("sealed local KeyManager (Shamir shares)", () => {
  let dir: string;
  let path: string;
  let shares: string[];
  let setId: string;
  const managers: LocalKeyManager[] = [];
  const openSealed = async (now?: () => number) => {
    const manager = await LocalKeyManager.open(path, { create: false, ...(now ? { now } : {}) });
    managers.push(manager);
    return manager;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-sealed-"));
    path = join(dir, "kek.json");
    ({ setId, shares } = await LocalKeyManager.initSealed(path, { shares: 5, threshold: 3 }));
  });
  afterEach(async () => {
    for (const manager of managers.splice(0)) await manager.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("hands out 5 distinct full-length shares of one set, threshold 3", () => {
    expect(setId).toMatch(/^kset_[0-9A-Za-z]+$/);
    expect(new Set(shares).size).toBe(5);
    const decoded = shares.map((s) => decodeShare(s));
    expect(decoded.map((d) => d.index)).toEqual([1, 2, 3, 4, 5]);
    for (const d of decoded) {
      expect(d.kekSetId).toBe(setId);
      expect(d.threshold).toBe(3);
      // As long as the 256-bit unseal key: a full share, never a half of the key.
      expect(d.value).toHaveLength(32);
    }
  });

  it("unseals with any 3 distinct shares in any order, and each unseal opens the same KEKs", async () => {
    const reference = await openSealed();
    for (const i of [0, 1, 2]) reference.submitShare(shares[i] as string);
    const dek = randomBytes(32);
    const wrapped = await reference.wrapKey(dek, CONTEXT);
    const testWrapped = await reference.wrapKey(dek, { ...CONTEXT, environment: "test" });

    const subsets = combinations(5, 3);
    expect(subsets).toHaveLength(10);
    for (const [n, subset] of subsets.entries()) {
      // Every other subset is submitted in reverse, and one rotated, so order is exercised too.
      const order =
        n % 3 === 0
          ? subset
          : n % 3 === 1
            ? [...subset].reverse()
            : [subset[1], subset[2], subset[0]];
      const manager = await openSealed();
      expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 0 });
      const progress: SealStatus[] = order.map((i) =>
        manager.submitShare(shares[i as number] as string),
      );
      expect(
        progress.map((s) => [s.sealed, s.progress]),
        String(order),
      ).toEqual([
        [true, 1],
        [true, 2],
        [false, 0],
      ]);
      expect(manager.sealStatus().sealed).toBe(false);
      await expect(manager.checkHealth()).resolves.toBeUndefined();
      expect(await manager.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
      expect(await manager.unwrapKey(testWrapped, { ...CONTEXT, environment: "test" })).toEqual(
        dek,
      );
      // A share after unsealing changes nothing.
      expect(manager.submitShare(shares[4] as string).sealed).toBe(false);
      await manager.close();
    }
  });

  it("stays sealed with 2 shares (progress 2): wrap, unwrap, rotate and health refuse with VaultSealedError", async () => {
    const unsealed = await openSealed();
    for (const i of [0, 1, 2]) unsealed.submitShare(shares[i] as string);
    const wrapped = await unsealed.wrapKey(randomBytes(32), CONTEXT);

    const manager = await openSealed();
    manager.submitShare(shares[3] as string);
    expect(manager.submitShare(shares[1] as string)).toEqual({
      sealed: true,
      threshold: 3,
      shares: 5,
      progress: 2,
    });
    expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 2 });
    await expect(manager.wrapKey(randomBytes(32), CONTEXT)).rejects.toBeInstanceOf(
      VaultSealedError,
    );
    await expect(manager.unwrapKey(wrapped, CONTEXT)).rejects.toBeInstanceOf(VaultSealedError);
    await expect(manager.rewrapKey(wrapped, CONTEXT)).rejects.toBeInstanceOf(VaultSealedError);
    await expect(manager.rotateKek("live")).rejects.toBeInstanceOf(VaultSealedError);
    await expect(manager.checkHealth()).rejects.toBeInstanceOf(VaultSealedError);
    await expect(manager.rekey({ shares: 3, threshold: 2 })).rejects.toBeInstanceOf(
      VaultSealedError,
    );
    // The inventory still names the KEKs (not their keys) while sealed.
    expect(kekOf(manager, "live").kekId).toBe(wrapped.kekId);
  });

  it("refuses a duplicate, a foreign and a mangled share with their own codes, keeping the progress", async () => {
    const other = await LocalKeyManager.initSealed(join(dir, "other.json"), {
      shares: 5,
      threshold: 3,
    });
    const manager = await openSealed();
    manager.submitShare(shares[0] as string);
    expectRefused(manager, shares[0] as string, "UNSEAL_SHARE_DUPLICATE");
    // The same share typed with line breaks and an upper-case prefix is still the same share.
    const retyped = `PVS1${(shares[0] as string).slice(4).replace(/(.{20})/g, "$1\n")}`;
    expectRefused(manager, retyped, "UNSEAL_SHARE_DUPLICATE", secretsOf(shares[0] as string));
    expectRefused(manager, other.shares[1] as string, "UNSEAL_SHARE_FOREIGN");
    expect(manager.sealStatus().progress).toBe(1);
    expectRefused(manager, mangled(shares[1] as string), "UNSEAL_SHARE_INVALID");
    expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 1 });
    // The refusals did not spoil the attempt: two more good shares unseal (2 counted refusals).
    manager.submitShare(shares[1] as string);
    expect(manager.submitShare(shares[2] as string).sealed).toBe(false);
    // The other vault's shares never open this one, even as a full threshold of them.
    const stranger = await openSealed();
    for (const i of [0, 1])
      expectRefused(stranger, other.shares[i] as string, "UNSEAL_SHARE_FOREIGN");
    expect(stranger.sealStatus().progress).toBe(0);
  });

  it("refuses garbage of every kind as UNSEAL_SHARE_INVALID without echoing it", async () => {
    const manager = await openSealed(() => 0);
    const good = shares[0] as string;
    const samples = [
      "",
      "hello",
      good.replace(/^pvs1/, "pvs2"),
      `${good}.extra`,
      good.slice(0, -1),
    ];
    for (const sample of samples) {
      const secrets = sample === "" ? secretsOf(good) : [sample, ...secretsOf(good)];
      expectRefused(manager, sample, "UNSEAL_SHARE_INVALID", secrets);
    }
    expect(manager.sealStatus().progress).toBe(0);
  });

  it("three shares with one of the right set but a wrong value fail as UNSEAL_FAILED and reset the progress", async () => {
    const manager = await openSealed();
    const bad = wrongValue(shares[2] as string);
    expect(decodeShare(bad)).toMatchObject({ kekSetId: setId, index: 3, threshold: 3 });
    manager.submitShare(shares[0] as string);
    manager.submitShare(bad);
    const err = expectRefused(manager, shares[4] as string, "UNSEAL_FAILED", [
      ...secretsOf(shares[0] as string),
      ...secretsOf(bad),
      ...secretsOf(shares[4] as string),
    ]);
    expect(err.retryAfterSeconds).toBeUndefined();
    expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 0 });
    await expect(manager.wrapKey(randomBytes(32), CONTEXT)).rejects.toBeInstanceOf(
      VaultSealedError,
    );
    // After the reset the same first share is not a duplicate: a fresh attempt unseals.
    for (const i of [0, 2]) manager.submitShare(shares[i] as string);
    expect(manager.submitShare(shares[4] as string).sealed).toBe(false);
  });

  it("locks unsealing for 15 minutes after 5 counted refusals (duplicates, failed combinations), keeping honest pending shares; wrong checksums never count", async () => {
    let now = 1_800_000_000_000;
    const manager = await openSealed(() => now);
    const other = await LocalKeyManager.initSealed(join(dir, "other.json"), {
      shares: 5,
      threshold: 3,
    });
    manager.submitShare(shares[0] as string);
    // Not counted: anyone can send a share with a wrong checksum, as often as they like.
    for (let i = 0; i < 2 * UNSEAL_MAX_FAILURES; i++) {
      expectRefused(manager, mangled(shares[1] as string), "UNSEAL_SHARE_INVALID");
    }
    // Counted: a duplicate, and a combination that does not open the seal (which forgets the
    // pending shares: which one was wrong cannot be told).
    expectRefused(manager, shares[0] as string, "UNSEAL_SHARE_DUPLICATE"); // 1
    expectRefused(manager, shares[0] as string, "UNSEAL_SHARE_DUPLICATE"); // 2
    // Not counted: malformed and foreign shares.
    expectRefused(manager, other.shares[0] as string, "UNSEAL_SHARE_FOREIGN");
    expectRefused(manager, "not a share", "UNSEAL_SHARE_INVALID");
    manager.submitShare(shares[1] as string);
    expectRefused(manager, wrongValue(shares[2] as string), "UNSEAL_FAILED"); // 3
    expect(manager.sealStatus().progress).toBe(0);
    manager.submitShare(shares[3] as string);
    expectRefused(manager, shares[3] as string, "UNSEAL_SHARE_DUPLICATE"); // 4
    expectRefused(manager, shares[3] as string, "UNSEAL_SHARE_DUPLICATE"); // 5: locked
    // The lockout keeps the honest custodian's pending share.
    expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 1 });

    const locked = expectRefused(manager, shares[4] as string, "UNSEAL_LOCKED");
    expect(locked.retryAfterSeconds).toBe(UNSEAL_LOCKOUT_MS / 1000);
    expect(UNSEAL_LOCKOUT_MS).toBe(15 * 60_000);
    now += 10 * 60_000;
    expect(expectRefused(manager, shares[4] as string, "UNSEAL_LOCKED").retryAfterSeconds).toBe(
      5 * 60,
    );
    now += 5 * 60_000 - 1;
    expect(expectRefused(manager, shares[2] as string, "UNSEAL_LOCKED").retryAfterSeconds).toBe(1);
    // Submissions while locked were not taken.
    expect(manager.sealStatus().progress).toBe(1);
    now += 1;
    expect(manager.submitShare(shares[4] as string).progress).toBe(2);
    expect(manager.submitShare(shares[2] as string).sealed).toBe(false);
    expect(
      await manager.unwrapKey(await manager.wrapKey(Buffer.alloc(32, 7), CONTEXT), CONTEXT),
    ).toEqual(Buffer.alloc(32, 7));
  });

  it("junk never locks and never clears other custodians' shares: malformed, foreign and wrong-length shares are refused uncounted", async () => {
    const manager = await openSealed(() => 0);
    const other = await LocalKeyManager.initSealed(join(dir, "other.json"), {
      shares: 5,
      threshold: 3,
    });
    manager.submitShare(shares[0] as string);
    manager.submitShare(shares[3] as string);
    // A share of the right set and threshold, with a valid checksum, but not 32 bytes long.
    const { kekSetId, threshold } = decodeShare(shares[1] as string);
    const short = encodeShare({ kekSetId, threshold, index: 2, value: randomBytes(16) });
    const long = encodeShare({ kekSetId, threshold, index: 2, value: randomBytes(33) });
    // Index 6 of a 5-share set cannot come from its split.
    const beyond = encodeShare({ kekSetId, threshold, index: 6, value: randomBytes(32) });
    for (let round = 0; round < 4; round++) {
      expectRefused(manager, `junk-${round}`, "UNSEAL_SHARE_INVALID");
      expectRefused(manager, "", "UNSEAL_SHARE_INVALID", secretsOf(shares[0] as string));
      expectRefused(manager, short, "UNSEAL_SHARE_INVALID");
      expectRefused(manager, long, "UNSEAL_SHARE_INVALID");
      expectRefused(manager, beyond, "UNSEAL_SHARE_INVALID");
      expectRefused(manager, other.shares[round] as string, "UNSEAL_SHARE_FOREIGN");
    }
    expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 2 });
    expect(manager.submitShare(shares[4] as string).sealed).toBe(false);
  });

  it("after a lockout the count starts again: 4 more counted refusals do not lock", async () => {
    let now = 1_800_000_000_000;
    const manager = await openSealed(() => now);
    // Duplicates count (they need a share of this set).
    manager.submitShare(shares[0] as string);
    for (let i = 0; i < 5; i++) {
      expectRefused(manager, shares[0] as string, "UNSEAL_SHARE_DUPLICATE");
    }
    expectRefused(manager, shares[1] as string, "UNSEAL_LOCKED");
    now += UNSEAL_LOCKOUT_MS;
    for (let i = 0; i < 4; i++) {
      expectRefused(manager, shares[0] as string, "UNSEAL_SHARE_DUPLICATE");
    }
    manager.submitShare(shares[1] as string);
    expect(manager.submitShare(shares[2] as string).sealed).toBe(false);
  });

  it("a threshold that passes the check but whose KEK versions do not open leaves the vault sealed, uncounted, and can be submitted again", async () => {
    // The check value matches, but a sealed version was altered on disk.
    const file = JSON.parse(await readFile(path, "utf8")) as {
      keks: { test: { versions: { sealed: string }[] } };
    };
    const version = file.keks.test.versions[0] as { sealed: string };
    const blob = Buffer.from(version.sealed, "base64");
    blob[20] = (blob[20] as number) ^ 1;
    version.sealed = blob.toString("base64");
    await writeFile(path, JSON.stringify(file), { mode: 0o600 });
    const manager = await openSealed(() => 0);
    for (let attempt = 0; attempt < UNSEAL_MAX_FAILURES + 1; attempt++) {
      manager.submitShare(shares[0] as string);
      manager.submitShare(shares[1] as string);
      expect(() => manager.submitShare(shares[2] as string)).toThrow(KekFileError);
      // Still sealed, nothing half-loaded, and not a lockout: the shares were right.
      expect(manager.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 0 });
      await expect(manager.checkHealth()).rejects.toBeInstanceOf(VaultSealedError);
      await expect(manager.wrapKey(randomBytes(32), CONTEXT)).rejects.toBeInstanceOf(
        VaultSealedError,
      );
    }
  });

  it("initSealed refuses to overwrite an existing KEK file, sealed or not", async () => {
    const before = await readFile(path, "utf8");
    const err = await LocalKeyManager.initSealed(path, { shares: 3, threshold: 2 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KekFileError);
    expect((err as Error).message).toMatch(/already exists/);
    expect(await readFile(path, "utf8")).toBe(before);
    // The old shares still unseal it.
    const manager = await openSealed();
    for (const i of [0, 1]) manager.submitShare(shares[i] as string);
    expect(manager.submitShare(shares[2] as string).sealed).toBe(false);

    const plain = join(dir, "plain.json");
    managers.push(await LocalKeyManager.open(plain, { create: true }));
    const plainText = await readFile(plain, "utf8");
    await expect(LocalKeyManager.initSealed(plain, { shares: 3, threshold: 2 })).rejects.toThrow(
      KekFileError,
    );
    expect(await readFile(plain, "utf8")).toBe(plainText);
  });

  it("initSealed with impossible options throws and leaves no file behind", async () => {
    for (const [n, options] of [
      { shares: 2, threshold: 3 },
      { shares: 3, threshold: 1 },
      { shares: 256, threshold: 3 },
      { shares: 3.5, threshold: 2 },
    ].entries()) {
      const target = join(dir, `bad-${n}.json`);
      await expect(LocalKeyManager.initSealed(target, options)).rejects.toThrow(RangeError);
      await expect(stat(target)).rejects.toMatchObject({ code: "ENOENT" });
      // A correct retry on the same path works.
      const retry = await LocalKeyManager.initSealed(target, { shares: 3, threshold: 2 });
      expect(retry.shares).toHaveLength(3);
    }
    expect((await readdir(dir)).filter((f) => f.includes(".tmp"))).toEqual([]);
  });
});

// --- The server: a real listener on a sealed vault -----------------------------------------

interface Reply {
  readonly statusCode: number;
  readonly body: string;
  readonly headers: Record<string, string>;
  json(): unknown;
}

async function call(
  base: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const res = await fetch(new URL(path, base), {
    method,
    headers: {
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const body = await res.text();
  return {
    statusCode: res.status,
    body,
    headers: Object.fromEntries(res.headers.entries()),
    json: () => JSON.parse(body) as unknown,
  };
}

function sealedVaultConfig(dataDir: string): Config {
  return loadConfig(
    {
      PAYVAULT_DATA_DIR: dataDir,
      PAYVAULT_INSECURE_HTTP: "1",
      PAYVAULT_PORT: "0",
      PAYVAULT_HOST: "127.0.0.1",
      PAYVAULT_LOG_LEVEL: "info",
    },
    dataDir,
  );
}

/** A vault started as `payvault serve` would, on a driver's database, with a real listener. */
class SealedServer {
  core!: Core;
  server!: RunningServer;
  readonly logs = new LogCapture();
  constructor(
    readonly config: Config,
    readonly db: TestDatabase,
  ) {}

  async start(keyManager?: LocalKeyManager): Promise<this> {
    this.core = await openCore(this.config, {
      db: this.db.db,
      ...(keyManager === undefined ? {} : { keyManager }),
    });
    this.server = await startServer(this.core, this.config, createLogger("info", this.logs));
    return this;
  }

  get url(): string {
    return this.server.url;
  }

  request(method: string, path: string, options?: Parameters<typeof call>[3]) {
    return call(this.url, method, path, options);
  }

  unseal(share: string): Promise<Reply> {
    return this.request("POST", "/v1/sys/unseal", { body: { share } });
  }

  async status(): Promise<unknown> {
    const res = await this.request("GET", "/v1/sys/seal-status");
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    await this.core?.close();
  }
}

function expectUnsealProblem(res: Reply, code: ErrorCode, share: string): void {
  const problem = expectProblem(res, code);
  for (const secret of secretsOf(share)) expect(res.body).not.toContain(secret);
  expect(problem.detail ?? "").not.toBe("");
}

async function auditActions(core: Core, action: string) {
  const { rows } = await core.db.query<{ actor: string; outcome: string; details: unknown }>(
    "SELECT actor, outcome, details FROM audit_events WHERE action = $1 ORDER BY occurred_at, id",
    [action],
  );
  return rows.map((r) => ({
    ...r,
    details: typeof r.details === "string" ? JSON.parse(r.details) : r.details,
  }));
}

function serverSuite(driver: Driver): void {
  describe(`a sealed vault behind a real listener (${driver.name})`, () => {
    let dataDir: string;
    let config: Config;
    let database: TestDatabase;
    let vault: SealedServer;
    let shares: string[];
    let tokenId: string;
    let adminKey: string;

    beforeAll(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "payvault-sealed-server-"));
      config = sealedVaultConfig(dataDir);
      ({ shares } = await LocalKeyManager.initSealed(config.kekFile, { shares: 5, threshold: 3 }));
      database = await driver.open();
      vault = await new SealedServer(config, database).start();
    });
    afterAll(async () => {
      await vault?.stop();
      await database?.drop();
      await rm(dataDir, { recursive: true, force: true });
    });

    it("starts sealed: readyz 503 VAULT_SEALED, healthz 200, data and admin routes 503 whatever the auth", async () => {
      expect(vault.core.sealStatus().sealed).toBe(true);
      expect(vault.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const ready = await vault.request("GET", "/readyz");
      expectProblem(ready, "VAULT_SEALED");
      const health = await vault.request("GET", "/healthz");
      expect(health.statusCode).toBe(200);
      expect(health.json()).toEqual({ status: "ok" });
      for (const headers of [
        {},
        { authorization: "Bearer pv_live_notakeyatall" },
        { authorization: `Bearer pv_live_${"A".repeat(22)}_${"b".repeat(43)}` },
      ]) {
        expectProblem(
          await vault.request("POST", "/v1/tokens", { headers, body: tokenizeBody(CARDS.visa) }),
          "VAULT_SEALED",
        );
        expectProblem(
          await vault.request("GET", `/v1/tokens/tok_${"a".repeat(22)}`, { headers }),
          "VAULT_SEALED",
        );
        expectProblem(await vault.request("GET", "/v1/sys/keys", { headers }), "VAULT_SEALED");
        expectProblem(
          await vault.request("POST", "/v1/sys/ceremonies", {
            headers,
            body: { action: "kek.rotate", params: { environment: "live" } },
          }),
          "VAULT_SEALED",
        );
      }
      // No bootstrap before unsealing: the store cannot be written without keys.
      await expect(stat(join(dataDir, "bootstrap-key"))).rejects.toMatchObject({
        code: "ENOENT",
      });
      expect(await vault.status()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 0 });
    });

    it("takes shares one by one over POST /v1/sys/unseal, refusing bad and duplicate ones, then unseals", async () => {
      const first = await vault.unseal(shares[4] as string);
      expect(first.statusCode, first.body).toBe(200);
      expect(first.json()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 1 });
      expect(await vault.status()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 1 });

      const bad = mangled(shares[1] as string);
      expectUnsealProblem(await vault.unseal(bad), "UNSEAL_SHARE_INVALID", bad);
      expectUnsealProblem(
        await vault.unseal(shares[4] as string),
        "UNSEAL_SHARE_DUPLICATE",
        shares[4] as string,
      );
      // Not a share at all, as the schema sees it.
      expect((await vault.request("POST", "/v1/sys/unseal", { body: {} })).statusCode).toBe(400);
      expect(await vault.status()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 1 });

      const second = await vault.unseal(shares[1] as string);
      expect(second.json()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 2 });
      expectProblem(await vault.request("GET", "/readyz"), "VAULT_SEALED");
      const third = await vault.unseal(shares[2] as string);
      expect(third.statusCode, third.body).toBe(200);
      expect(third.json()).toEqual({ sealed: false, threshold: 3, shares: 5, progress: 0 });
      expect(await vault.status()).toEqual({ sealed: false, threshold: 3, shares: 5, progress: 0 });
    });

    it("once unsealed: readyz 200, the bootstrap key written after unsealing tokenizes and reveals", async () => {
      const ready = await vault.request("GET", "/readyz");
      expect(ready.statusCode, ready.body).toBe(200);
      expect(ready.json()).toMatchObject({ status: "ready", kek: "local" });
      const keyFile = join(dataDir, "bootstrap-key");
      expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
      adminKey = (await readFile(keyFile, "utf8")).trim();
      expect(adminKey).toMatch(/^pv_live_[0-9A-Za-z]{22}_[0-9A-Za-z]{43}$/);
      const headers = { authorization: `Bearer ${adminKey}` };
      const created = await vault.request("POST", "/v1/tokens", {
        headers,
        body: tokenizeBody(CARDS.visa, { persistent: true }),
      });
      expect(created.statusCode, created.body).toBe(201);
      tokenId = (created.json() as { id: string }).id;
      const revealed = await vault.request("POST", `/v1/tokens/${tokenId}/reveal`, {
        headers,
        body: { purpose: "sealed-mode test" },
      });
      expect(revealed.statusCode, revealed.body).toBe(200);
      expect((revealed.json() as { card: { number: string } }).card.number).toBe(CARDS.visa);
    });

    it("audits vault.unseal, keeps the audit chain intact, and never logs or stores a share", async () => {
      const events = await auditActions(vault.core, "vault.unseal");
      expect(events).toEqual([
        { actor: "custodians", outcome: "success", details: { threshold: 3 } },
      ]);
      const report = await verifyAuditChain(vault.core.db, vault.core.keys);
      expect(report.brokenLink).toBeUndefined();
      expect(report.sealed + report.unsealed).toBeGreaterThan(0);
      const { rows } = await vault.core.db.query<{ row: string }>(
        "SELECT row_to_json(a)::text AS row FROM audit_events a",
      );
      const everything = [
        rows.map((r) => r.row).join("\n"),
        vault.logs.text,
        await readFile(config.kekFile, "utf8"),
      ].join("\n");
      for (const share of shares) {
        for (const secret of secretsOf(share)) expect(everything).not.toContain(secret);
      }
    });

    it("a share posted after unsealing is answered with the status and audits no second vault.unseal", async () => {
      const before = await auditActions(vault.core, "vault.unseal");
      expect(before).toHaveLength(1);
      // /v1/sys/unseal takes no credential: anyone can post to it once the vault is unsealed.
      for (const share of [shares[0] as string, shares[3] as string, "not a share"]) {
        const late = await vault.unseal(share);
        expect(late.statusCode, late.body).toBe(200);
        expect(late.json()).toEqual({ sealed: false, threshold: 3, shares: 5, progress: 0 });
      }
      expect(await auditActions(vault.core, "vault.unseal")).toHaveLength(1);
    });

    it("after a restart it is sealed again; refusals of every kind lock it out (429 + Retry-After) until the clock passes 15 minutes", async () => {
      await vault.stop();
      let now = Date.now();
      const manager = await LocalKeyManager.open(config.kekFile, {
        create: false,
        now: () => now,
      });
      vault = await new SealedServer(config, database).start(manager);
      expect(await vault.status()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 0 });
      expectProblem(await vault.request("GET", "/readyz"), "VAULT_SEALED");
      const bootstrapBefore = await readFile(join(dataDir, "bootstrap-key"), "utf8");
      const unsealsBefore = (await auditActions(vault.core, "vault.unseal")).length;

      const foreign = (
        await LocalKeyManager.initSealed(join(dataDir, "other.kek"), { shares: 5, threshold: 3 })
      ).shares[0] as string;
      const wrong = wrongValue(shares[2] as string);
      expect((await vault.unseal(shares[0] as string)).statusCode).toBe(200);
      expectUnsealProblem(
        await vault.unseal(shares[0] as string),
        "UNSEAL_SHARE_DUPLICATE",
        shares[0] as string,
      ); // 1
      // Foreign and malformed shares are refused but not counted.
      expectUnsealProblem(await vault.unseal(foreign), "UNSEAL_SHARE_FOREIGN", foreign);
      expectUnsealProblem(await vault.unseal("pvs1.junk"), "UNSEAL_SHARE_INVALID", "pvs1.junk");
      const bad = mangled(shares[3] as string);
      expectUnsealProblem(await vault.unseal(bad), "UNSEAL_SHARE_INVALID", bad); // not counted
      expectUnsealProblem(
        await vault.unseal(shares[0] as string),
        "UNSEAL_SHARE_DUPLICATE",
        shares[0] as string,
      ); // 2
      expect((await vault.unseal(shares[1] as string)).json()).toMatchObject({ progress: 2 });
      expectUnsealProblem(await vault.unseal(wrong), "UNSEAL_FAILED", wrong); // 3
      expect(await vault.status()).toMatchObject({ sealed: true, progress: 0 });
      expect((await vault.unseal(shares[1] as string)).json()).toMatchObject({ progress: 1 });
      expectUnsealProblem(
        await vault.unseal(shares[1] as string),
        "UNSEAL_SHARE_DUPLICATE",
        shares[1] as string,
      ); // 4
      expectUnsealProblem(
        await vault.unseal(shares[1] as string),
        "UNSEAL_SHARE_DUPLICATE",
        shares[1] as string,
      ); // 5: locked

      for (const share of [shares[3], shares[4], shares[2]] as string[]) {
        const locked = await vault.unseal(share);
        expectUnsealProblem(locked, "UNSEAL_LOCKED", share);
        expect(locked.headers["retry-after"]).toBe("900");
      }
      // The honest custodian's share is still pending.
      expect(await vault.status()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 1 });
      expectProblem(
        await vault.request("POST", "/v1/tokens", {
          headers: { authorization: `Bearer ${adminKey}` },
          body: tokenizeBody(CARDS.visa),
        }),
        "VAULT_SEALED",
      );
      now += 14 * 60_000;
      const stillLocked = await vault.unseal(shares[3] as string);
      expectUnsealProblem(stillLocked, "UNSEAL_LOCKED", shares[3] as string);
      expect(stillLocked.headers["retry-after"]).toBe("60");

      now += 60_000;
      expect((await vault.unseal(shares[3] as string)).json()).toMatchObject({
        sealed: true,
        progress: 2,
      });
      expect((await vault.unseal(shares[2] as string)).json()).toMatchObject({ sealed: false });
      expect((await vault.request("GET", "/readyz")).statusCode).toBe(200);

      // The data survived; no second bootstrap; a second vault.unseal; the chain still verifies.
      const revealed = await vault.request("POST", `/v1/tokens/${tokenId}/reveal`, {
        headers: { authorization: `Bearer ${adminKey}` },
        body: { purpose: "after restart" },
      });
      expect(revealed.statusCode, revealed.body).toBe(200);
      expect((revealed.json() as { card: { number: string } }).card.number).toBe(CARDS.visa);
      expect(await readFile(join(dataDir, "bootstrap-key"), "utf8")).toBe(bootstrapBefore);
      expect(await auditActions(vault.core, "vault.unseal")).toHaveLength(unsealsBefore + 1);
      expect((await verifyAuditChain(vault.core.db, vault.core.keys)).brokenLink).toBeUndefined();
    });
  });
}

for (const driver of DRIVERS) serverSuite(driver);

// --- The CLI: payvault init and payvault unseal --------------------------------------------

/** `payvault unseal …` with `input` on standard input (cli-runner's children get no stdin). */
function runUnsealCli(args: readonly string[], dataDir: string, input: string): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith("PAYVAULT_") || name.startsWith("DATABASE_URL")) continue;
    if (name === "NODE_OPTIONS" || name.startsWith("VITEST")) continue;
    env[name] = value;
  }
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "unseal", ...args], {
    cwd: REPO_ROOT,
    env: { ...env, PAYVAULT_DATA_DIR: dataDir },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe("payvault init and payvault unseal (CLI)", () => {
  let dataDir: string;
  let database: TestDatabase;
  let vault: SealedServer | undefined;
  let shares: string[];
  const cli = (...args: string[]) => runCli(args, { dataDir });

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-sealed-cli-"));
    database = await (DRIVERS[0] as Driver).open();
  });
  afterAll(async () => {
    await vault?.stop();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it(
    "init --shares 3 --threshold 2 prints 3 custodian shares once and creates the sealed file; a second init is refused",
    async () => {
      const kekFile = join(dataDir, "kek.json");
      const result = await cli("init", "--shares", "3", "--threshold", "2");
      expect(result.code, result.stderr).toBe(0);
      const lines = [...result.stdout.matchAll(/^custodian (\d+): (pvs1\.\S+)$/gm)];
      expect(lines.map((m) => m[1])).toEqual(["1", "2", "3"]);
      shares = lines.map((m) => m[2] as string);
      const decoded = shares.map((s) => decodeShare(s));
      expect(decoded.map((d) => d.index)).toEqual([1, 2, 3]);
      expect(new Set(decoded.map((d) => d.kekSetId)).size).toBe(1);
      expect(decoded.every((d) => d.threshold === 2 && d.value.length === 32)).toBe(true);
      expect(result.stdout).toContain(kekFile);
      expect(result.stdout).toMatch(/any 2 of them unseal/);

      expect((await stat(kekFile)).mode & 0o777).toBe(0o600);
      const text = await readFile(kekFile, "utf8");
      const file = JSON.parse(text) as { format: string; seal: Record<string, unknown> };
      expect(file.format).toBe("payvault-kek/v2");
      expect(file.seal).toMatchObject({
        set_id: decoded[0]?.kekSetId,
        shares: 3,
        threshold: 2,
      });
      expect(text).not.toMatch(/"key"\s*:/);
      for (const share of shares) expect(text).not.toContain(share);

      const again = await cli("init", "--shares", "3", "--threshold", "2");
      expect(again.code).not.toBe(0);
      expect(again.stderr).toMatch(/a KEK file already exists at .*kek\.json/);
      expect(again.stdout).not.toMatch(/custodian \d+:/);
      expect(await readFile(kekFile, "utf8")).toBe(text);

      const impossible = await runCli(["init", "--shares", "2", "--threshold", "3"], {
        dataDir: join(dataDir, "elsewhere"),
      });
      expect(impossible.code).toBe(2);
      expect(impossible.stderr).toMatch(/2 <= T <= N <= 255/);
      await expect(stat(join(dataDir, "elsewhere", "kek.json"))).rejects.toMatchObject({
        code: "ENOENT",
      });
    },
    SLOW,
  );

  it(
    "payvault unseal --url reads a share from stdin: the first moves progress, a bad one is refused, the second unseals",
    async () => {
      expect(shares).toHaveLength(3);
      const config = sealedVaultConfig(dataDir);
      vault = await new SealedServer(config, database).start();
      expect(await vault.status()).toEqual({ sealed: true, threshold: 2, shares: 3, progress: 0 });

      const first = await runUnsealCli(["--url", vault.url], dataDir, `${shares[2]}\n`);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/Share accepted: 1 of 2 needed\./);
      expect(await vault.status()).toEqual({ sealed: true, threshold: 2, shares: 3, progress: 1 });

      const bad = mangled(shares[0] as string);
      const refused = await runUnsealCli(["--url", vault.url], dataDir, `${bad}\n`);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/unseal refused \(UNSEAL_SHARE_INVALID\)/);
      for (const secret of secretsOf(bad)) {
        expect(refused.stderr + refused.stdout).not.toContain(secret);
      }
      const empty = await runUnsealCli(["--url", vault.url], dataDir, "");
      expect(empty.code).toBe(2);
      expect(empty.stderr).toMatch(/no share on standard input/);
      expect(await vault.status()).toMatchObject({ sealed: true, progress: 1 });

      const second = await runUnsealCli(["--url", vault.url], dataDir, `  ${shares[0]}  \n`);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toMatch(/The vault is unsealed\./);
      for (const share of shares) expect(second.stdout + second.stderr).not.toContain(share);
      expect(await vault.status()).toEqual({ sealed: false, threshold: 2, shares: 3, progress: 0 });
      expect((await vault.request("GET", "/readyz")).statusCode).toBe(200);
      const bootstrap = (await readFile(join(dataDir, "bootstrap-key"), "utf8")).trim();
      const created = await vault.request("POST", "/v1/tokens", {
        headers: { authorization: `Bearer ${bootstrap}` },
        body: tokenizeBody(CARDS.mastercard),
      });
      expect(created.statusCode, created.body).toBe(201);
    },
    SLOW,
  );
});

for (const driver of DRIVERS) {
  describe(`unsealing when the steps after it fail (${driver.name})`, () => {
    it("stays sealed for clients until its keys load and the unseal is audited; the next share posted tries again", async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "payvault-sealed-retry-"));
      const config = sealedVaultConfig(dataDir);
      const { shares } = await LocalKeyManager.initSealed(config.kekFile, {
        shares: 3,
        threshold: 2,
      });
      const database = await driver.open();
      const vault = await new SealedServer(config, database).start();
      try {
        // The audit trail cannot be written: loading the vault's keys (each creation is
        // audited) and auditing the unseal fail.
        await database.db.query("ALTER TABLE audit_events RENAME TO audit_events_away");
        expect((await vault.unseal(shares[0] as string)).statusCode).toBe(200);
        const failed = await vault.unseal(shares[1] as string);
        expect(failed.statusCode, failed.body).toBeGreaterThanOrEqual(500);
        expect(vault.core.sealStatus().sealed).toBe(true);
        expect((await vault.request("GET", "/readyz")).statusCode).toBe(503);
        await database.db.query("ALTER TABLE audit_events_away RENAME TO audit_events");
        // Any share again (even one already counted) finishes the unseal.
        const retried = await vault.unseal(shares[0] as string);
        expect(retried.statusCode, retried.body).toBe(200);
        expect(retried.json()).toMatchObject({ sealed: false });
        expect((await vault.request("GET", "/readyz")).statusCode).toBe(200);
        expect(await auditActions(vault.core, "vault.unseal")).toHaveLength(1);
      } finally {
        await vault.stop();
        await database.drop();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });
}
