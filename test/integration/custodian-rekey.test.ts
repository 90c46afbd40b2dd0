import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { openCore } from "../../src/app/core.js";
import { runRekey } from "../../src/cli/commands/seal.js";
import { CliError } from "../../src/cli/output.js";
import { loadConfig } from "../../src/config/config.js";
import { aesGcmDecrypt } from "../../src/crypto/aes-gcm.js";
import { combineShares } from "../../src/crypto/shamir.js";
import type { Environment, KeyContext } from "../../src/keys/key-manager.js";
import { KeyServiceUnavailableError, kekOf } from "../../src/keys/key-manager.js";
import { LocalKeyManager } from "../../src/keys/local-key-manager.js";
import type { UnsealErrorCode } from "../../src/keys/seal.js";
import { UnsealError } from "../../src/keys/seal.js";
import { decodeShare, encodeShare } from "../../src/keys/unseal-share.js";

/**
 * Custodian change in two steps (PCI DSS 3.6.1.2, 3.7.6): a custodians.rekey stages a new share
 * set beside the current seal, which stays authoritative; the switch happens only when a
 * threshold of the NEW shares is submitted back. A rekey whose shares never reach their
 * custodians (response lost, process killed) can therefore never lock the vault out.
 */

const CONTEXT: KeyContext = {
  dekId: "dek_rekey",
  owner: "ten_rekey",
  purpose: "pan",
  environment: "live",
};

interface KekFileJson {
  seal: { set_id: string; shares: number; threshold: number; check: string } | null;
  pending_seal?: {
    set_id: string;
    shares: number;
    threshold: number;
    check: string;
    staged_at: string;
    ceremony_id?: string;
  };
  keks: Record<
    Environment,
    { kek_id: string; versions: { version: number; key?: string; sealed?: string }[] }
  >;
}

async function readJson(path: string): Promise<KekFileJson> {
  return JSON.parse(await readFile(path, "utf8")) as KekFileJson;
}

function wrongValue(share: string): string {
  const decoded = decodeShare(share);
  const value = Buffer.from(decoded.value);
  value[0] = (value[0] as number) ^ 0x5a;
  return encodeShare({ ...decoded, value });
}

async function refusal(attempt: Promise<unknown>): Promise<UnsealErrorCode> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnsealError);
  return (err as UnsealError).code;
}

function syncRefusal(run: () => unknown): UnsealErrorCode {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UnsealError);
    return (err as UnsealError).code;
  }
  throw new Error("expected an UnsealError");
}

/** Every KEK version's bytes, opened by hand with the unseal key that `shares` rebuild. */
async function kekBytesByHand(path: string, shares: readonly string[]): Promise<string[]> {
  const file = await readJson(path);
  const unsealKey = combineShares(
    shares.map((s) => {
      const { index, value } = decodeShare(s);
      return { index, value };
    }),
  );
  const out: string[] = [];
  for (const environment of ["live", "test"] as const) {
    const kek = file.keks[environment];
    for (const version of kek.versions) {
      const blob = Buffer.from(String(version.sealed), "base64");
      const key = aesGcmDecrypt(
        unsealKey,
        blob.subarray(0, 12),
        blob.subarray(12, blob.length - 16),
        blob.subarray(blob.length - 16),
        Buffer.from(`payvault/kek-seal/v1\u0000${kek.kek_id}\u0000${version.version}`, "utf8"),
      );
      out.push(`${environment}/${kek.kek_id}/${version.version}/${key.toString("hex")}`);
    }
  }
  return out;
}

describe("custodian rekey: staged, then confirmed by a threshold of the new shares", () => {
  let dir: string;
  let path: string;
  let initial: { setId: string; shares: string[] };
  const managers: LocalKeyManager[] = [];
  const openAt = async (at: string, create = false) => {
    const manager = await LocalKeyManager.open(at, { create });
    managers.push(manager);
    return manager;
  };
  const unsealed = async (shares: readonly string[], pick: readonly number[], at = path) => {
    const manager = await openAt(at);
    for (const i of pick) manager.submitShare(shares[i] as string);
    expect(manager.sealStatus().sealed).toBe(false);
    return manager;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-rekey-"));
    path = join(dir, "kek.json");
    initial = await LocalKeyManager.initSealed(path, { shares: 5, threshold: 3 });
  });
  afterEach(async () => {
    for (const manager of managers.splice(0)) await manager.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("stages the new set beside the current seal; abandoned before confirmation, the old shares still unseal after a restart", async () => {
    const manager = await unsealed(initial.shares, [0, 1, 2]);
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, CONTEXT);
    const before = await readJson(path);

    const fresh = await manager.rekey({ shares: 3, threshold: 2, ceremonyId: "cer_staged" });
    expect(fresh.setId).not.toBe(initial.setId);
    expect(fresh.shares).toHaveLength(3);
    expect(fresh.replacedSetId).toBeUndefined();
    const after = await readJson(path);
    // The current seal and every sealed KEK version are exactly as they were.
    expect(after.seal).toEqual(before.seal);
    expect(after.keks).toEqual(before.keks);
    expect(after.pending_seal).toMatchObject({
      set_id: fresh.setId,
      shares: 3,
      threshold: 2,
      ceremony_id: "cer_staged",
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, "utf8");
    for (const share of fresh.shares) {
      expect(text).not.toContain(share);
      expect(text).not.toContain(share.split(".")[4] as string);
    }
    expect(manager.sealStatus()).toEqual({ sealed: false, threshold: 3, shares: 5, progress: 0 });
    expect(await manager.rekeyStatus()).toMatchObject({
      pending: true,
      setId: fresh.setId,
      threshold: 2,
      shares: 3,
      progress: 0,
      ceremonyId: "cer_staged",
    });

    // The process that staged it is gone (it kept no copy of the new key).
    await manager.close();
    const restarted = await openAt(path);
    expect(restarted.sealStatus()).toEqual({ sealed: true, threshold: 3, shares: 5, progress: 0 });
    expect(syncRefusal(() => restarted.submitShare(fresh.shares[0] as string))).toBe(
      "UNSEAL_SHARE_FOREIGN",
    );
    for (const i of [4, 3, 1]) restarted.submitShare(initial.shares[i] as string);
    expect(restarted.sealStatus().sealed).toBe(false);
    expect(await restarted.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
    // The staged set survives the restart and can still be confirmed.
    expect((await restarted.rekeyStatus()).pending).toBe(true);
    await restarted.submitRekeyShare(fresh.shares[1] as string);
    expect((await restarted.submitRekeyShare(fresh.shares[2] as string)).confirmed).toBe(true);
  });

  it("a threshold of the new shares switches the seal: only they unseal from then on, and the KEK values and wraps are unchanged", async () => {
    const manager = await unsealed(initial.shares, [0, 1, 2]);
    const dek = randomBytes(32);
    const wrapped = await manager.wrapKey(dek, CONTEXT);
    const testWrapped = await manager.wrapKey(dek, { ...CONTEXT, environment: "test" });
    const kekBefore = await kekBytesByHand(path, initial.shares.slice(0, 3));

    const fresh = await manager.rekey({ shares: 3, threshold: 2 });
    const first = await manager.submitRekeyShare(fresh.shares[2] as string);
    expect(first).toMatchObject({
      pending: true,
      confirmed: false,
      setId: fresh.setId,
      threshold: 2,
      shares: 3,
      progress: 1,
    });
    expect((await readJson(path)).seal?.set_id).toBe(initial.setId);
    const second = await manager.submitRekeyShare(fresh.shares[0] as string);
    expect(second).toMatchObject({ pending: false, confirmed: true, setId: fresh.setId });

    const file = await readJson(path);
    expect(file.seal).toMatchObject({ set_id: fresh.setId, shares: 3, threshold: 2 });
    expect(file.pending_seal).toBeUndefined();
    expect(await readFile(path, "utf8")).not.toMatch(/"key"\s*:/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    // A rekey changes who can unseal, not the KEKs: the same values, ids and versions.
    expect(await kekBytesByHand(path, fresh.shares.slice(1))).toEqual(kekBefore);
    expect(manager.sealStatus()).toEqual({ sealed: false, threshold: 2, shares: 3, progress: 0 });
    expect((await manager.rekeyStatus()).pending).toBe(false);
    expect(await refusal(manager.submitRekeyShare(fresh.shares[1] as string))).toBe(
      "REKEY_NOT_PENDING",
    );

    // Only the new shares open the file now.
    const reopened = await openAt(path);
    for (const old of initial.shares) {
      expect(syncRefusal(() => reopened.submitShare(old))).toBe("UNSEAL_SHARE_FOREIGN");
    }
    reopened.submitShare(fresh.shares[1] as string);
    expect(reopened.submitShare(fresh.shares[2] as string).sealed).toBe(false);
    expect(await reopened.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
    expect(await reopened.unwrapKey(testWrapped, { ...CONTEXT, environment: "test" })).toEqual(dek);
    expect(kekOf(reopened, "live")).toEqual(kekOf(manager, "live"));

    // The confirming process holds the new key: its next rotation is sealed under it.
    await manager.rotateKek("live");
    const underV2 = await manager.wrapKey(dek, CONTEXT);
    const third = await unsealed(fresh.shares, [0, 2]);
    expect(await third.unwrapKey(underV2, CONTEXT)).toEqual(dek);
  });

  it("wrong, insufficient, old and duplicate new shares are refused and the old seal stays", async () => {
    let now = 1_800_000_000_000;
    const manager = await LocalKeyManager.open(path, { create: false, now: () => now });
    managers.push(manager);
    for (const i of [0, 1, 2]) manager.submitShare(initial.shares[i] as string);
    const fresh = await manager.rekey({ shares: 4, threshold: 3 });
    const staged = await readFile(path, "utf8");

    // A share of the current set is not one of the new set.
    expect(await refusal(manager.submitRekeyShare(initial.shares[3] as string))).toBe(
      "UNSEAL_SHARE_FOREIGN",
    );
    await manager.submitRekeyShare(fresh.shares[0] as string);
    expect(await refusal(manager.submitRekeyShare(fresh.shares[0] as string))).toBe(
      "UNSEAL_SHARE_DUPLICATE",
    );
    expect((await manager.submitRekeyShare(fresh.shares[1] as string)).progress).toBe(2);
    // A threshold that does not open the staged seal: refused, and nothing switches.
    expect(await refusal(manager.submitRekeyShare(wrongValue(fresh.shares[2] as string)))).toBe(
      "UNSEAL_FAILED",
    );
    expect(await manager.rekeyStatus()).toMatchObject({ pending: true, progress: 0 });
    expect(await readFile(path, "utf8")).toBe(staged);
    // Fewer than the threshold: nothing switches either.
    await manager.submitRekeyShare(fresh.shares[3] as string);
    await manager.submitRekeyShare(fresh.shares[1] as string);
    expect(await readFile(path, "utf8")).toBe(staged);

    // Counted refusals lock the confirmation like unsealing: 2 so far, 3 more lock it.
    for (let i = 0; i < 2; i++) {
      expect(await refusal(manager.submitRekeyShare(fresh.shares[1] as string))).toBe(
        "UNSEAL_SHARE_DUPLICATE",
      );
    }
    expect(await refusal(manager.submitRekeyShare(wrongValue(fresh.shares[0] as string)))).toBe(
      "UNSEAL_FAILED",
    );
    expect(await refusal(manager.submitRekeyShare(fresh.shares[0] as string))).toBe(
      "UNSEAL_LOCKED",
    );
    now += 15 * 60_000;
    expect(await readFile(path, "utf8")).toBe(staged);

    const restarted = await openAt(path);
    for (const share of fresh.shares) {
      expect(syncRefusal(() => restarted.submitShare(share))).toBe("UNSEAL_SHARE_FOREIGN");
    }
    for (const i of [2, 3, 4]) restarted.submitShare(initial.shares[i] as string);
    expect(restarted.sealStatus().sealed).toBe(false);
  });

  it("a failing pre-switch step (the audit) leaves the old seal, and the shares can be submitted again", async () => {
    const manager = await unsealed(initial.shares, [0, 1, 2]);
    const fresh = await manager.rekey({ shares: 3, threshold: 2 });
    const staged = await readFile(path, "utf8");
    await manager.submitRekeyShare(fresh.shares[0] as string);
    const failing = manager.submitRekeyShare(fresh.shares[1] as string, {
      beforeCommit: async () => {
        throw new Error("audit unavailable");
      },
    });
    await expect(failing).rejects.toThrow("audit unavailable");
    expect(await readFile(path, "utf8")).toBe(staged);
    expect(await manager.rekeyStatus()).toMatchObject({ pending: true, progress: 0 });
    const hook = vi.fn(async () => undefined);
    await manager.submitRekeyShare(fresh.shares[0] as string, { beforeCommit: hook });
    const done = await manager.submitRekeyShare(fresh.shares[1] as string, { beforeCommit: hook });
    expect(done.confirmed).toBe(true);
    expect(hook).toHaveBeenCalledExactlyOnceWith(fresh.setId);
  });

  it("cancel drops the staged set (its shares are refused, the current seal is untouched); a second rekey replaces the first", async () => {
    const manager = await unsealed(initial.shares, [0, 1, 2]);
    const before = await readJson(path);
    const dropped = await manager.rekey({ shares: 3, threshold: 2 });
    expect(await manager.cancelRekey()).toEqual({ setId: dropped.setId });
    expect(await readJson(path)).toEqual(before);
    expect(await refusal(manager.submitRekeyShare(dropped.shares[0] as string))).toBe(
      "REKEY_NOT_PENDING",
    );
    expect(await refusal(manager.cancelRekey())).toBe("REKEY_NOT_PENDING");

    const first = await manager.rekey({ shares: 3, threshold: 2 });
    const second = await manager.rekey({ shares: 2, threshold: 2 });
    expect(second.replacedSetId).toBe(first.setId);
    expect(await refusal(manager.submitRekeyShare(first.shares[0] as string))).toBe(
      "UNSEAL_SHARE_FOREIGN",
    );
    await manager.submitRekeyShare(second.shares[0] as string);
    expect((await manager.submitRekeyShare(second.shares[1] as string)).confirmed).toBe(true);
    expect((await readJson(path)).seal?.set_id).toBe(second.setId);
  });

  it("an unsealed file becomes a sealed one only when the new shares are confirmed", async () => {
    const plainPath = join(dir, "plain.json");
    const plain = await openAt(plainPath, true);
    const dek = randomBytes(32);
    const wrapped = await plain.wrapKey(dek, CONTEXT);
    const set = await plain.rekey({ shares: 2, threshold: 2 });
    // Staged only: a restart finds the same unsealed file.
    expect((await readJson(plainPath)).seal).toBeNull();
    const stillPlain = await openAt(plainPath);
    expect(stillPlain.sealStatus().sealed).toBe(false);
    expect(await stillPlain.unwrapKey(wrapped, CONTEXT)).toEqual(dek);

    await plain.submitRekeyShare(set.shares[1] as string);
    expect((await plain.submitRekeyShare(set.shares[0] as string)).confirmed).toBe(true);
    expect(await readFile(plainPath, "utf8")).not.toMatch(/"key"\s*:/);
    expect(plain.sealStatus()).toEqual({ sealed: false, threshold: 2, shares: 2, progress: 0 });
    const resealed = await unsealed(set.shares, [0, 1], plainPath);
    expect(await resealed.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
    // The node that still runs on the plain KEKs keeps serving, but cannot change the file.
    expect(await stillPlain.unwrapKey(wrapped, CONTEXT)).toEqual(dek);
    await expect(stillPlain.rotateKek("live")).rejects.toBeInstanceOf(KeyServiceUnavailableError);
  });

  it("a KEK version another node adds while the rekey is pending is re-sealed at confirmation; a node left on the old set cannot change the file", async () => {
    const nodeA = await unsealed(initial.shares, [0, 1, 2]);
    const nodeB = await unsealed(initial.shares, [2, 3, 4]);
    const dek = randomBytes(32);
    const fresh = await nodeA.rekey({ shares: 3, threshold: 2 });
    // B sees the rekey staged by A in the file.
    expect(await nodeB.rekeyStatus()).toMatchObject({ pending: true, setId: fresh.setId });
    await nodeB.rotateKek("live");
    const underB = await nodeB.wrapKey(dek, CONTEXT);
    expect(underB.kekVersion).toBe(2);

    await nodeA.submitRekeyShare(fresh.shares[0] as string);
    expect((await nodeA.submitRekeyShare(fresh.shares[2] as string)).confirmed).toBe(true);
    const after = await unsealed(fresh.shares, [1, 2]);
    expect(kekOf(after, "live").currentVersion).toBe(2);
    expect(await after.unwrapKey(underB, CONTEXT)).toEqual(dek);

    // B still holds only the old unseal key: it keeps serving with the KEKs in memory, but it
    // must not add a version the file's seal cannot open.
    const text = await readFile(path, "utf8");
    await expect(nodeB.rotateKek("live")).rejects.toBeInstanceOf(KeyServiceUnavailableError);
    await expect(nodeB.rekey({ shares: 2, threshold: 2 })).rejects.toBeInstanceOf(
      KeyServiceUnavailableError,
    );
    expect(await readFile(path, "utf8")).toBe(text);
    expect(await nodeB.unwrapKey(underB, CONTEXT)).toEqual(dek);
  });
});

describe("payvault rekey status | verify | cancel (CLI, PGlite)", () => {
  let dataDir: string;
  let out: string;
  let err: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "payvault-rekey-cli-"));
    out = "";
    err = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    });
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("status shows the staged set, cancel drops it, verify reads new shares from stdin and switches the seal", async () => {
    const config = loadConfig({ PAYVAULT_DATA_DIR: dataDir }, dataDir);
    const approveRekey = async () => {
      const core = await openCore(config);
      try {
        const row = await core.ceremonies.propose(
          "custodians.rekey",
          { shares: 3, threshold: 2 },
          "cli:alice",
        );
        const outcome = await core.ceremonies.approve(row.id, "cli:bob");
        expect(outcome.result).toMatchObject({ pending_confirmation: true });
        return { id: row.id, ...(outcome.result as { share_set: string; shares: string[] }) };
      } finally {
        await core.close();
      }
    };

    const dropped = await approveRekey();
    expect(await runRekey(config, ["status", "--json"])).toBe(0);
    expect(JSON.parse(out)).toMatchObject({
      pending: true,
      share_set: dropped.share_set,
      threshold: 2,
      shares: 3,
      ceremony_id: dropped.id,
    });
    out = "";
    expect(await runRekey(config, ["cancel"])).toBe(0);
    expect(out).toContain(`share set ${dropped.share_set}) is cancelled`);
    out = "";
    expect(await runRekey(config, ["status"])).toBe(0);
    expect(out).toMatch(/No custodian rekey is waiting/);
    expect(await runRekey(config, ["verify"], Readable.from([]))).toBe(1);
    expect(err).toMatch(/no custodian rekey is waiting/);
    expect((await readJson(config.kekFile)).seal).toBeNull();

    const staged = await approveRekey();
    out = "";
    err = "";
    const original = staged.shares[1] as string;
    const typo = `${original.slice(0, -1)}${original.endsWith("0") ? "1" : "0"}`;
    const code = await runRekey(
      config,
      ["verify"],
      Readable.from([`${typo}\n`, `  ${staged.shares[2]}\n`, "\n", `${staged.shares[0]}\n`]),
    );
    expect(code, err).toBe(0);
    expect(out).toMatch(/Share accepted: 1 of 2 needed\./);
    expect(out).toMatch(/Confirmed: share set kset_\w+ \(any 2 of 3\) now seals the KEK file/);
    expect(err).toMatch(/share refused \(UNSEAL_SHARE_INVALID\)/);
    for (const share of [...staged.shares, typo]) {
      expect(out + err).not.toContain(share);
      expect(out + err).not.toContain(share.split(".")[4] as string);
    }
    const file = await readJson(config.kekFile);
    expect(file.seal?.set_id).toBe(staged.share_set);
    expect(file.pending_seal).toBeUndefined();

    // This process cannot open the sealed file any more: the CLI says where to go instead.
    await expect(runRekey(config, ["status"])).rejects.toThrow(CliError);
    const manager = await LocalKeyManager.open(config.kekFile, { create: false });
    manager.submitShare(staged.shares[1] as string);
    expect(manager.submitShare(staged.shares[0] as string).sealed).toBe(false);
    await manager.close();

    // Every step is in the audit trail, never a share.
    const core = await openCore(config);
    try {
      const { rows } = await core.db.query<{ outcome: string; actor: string; details: unknown }>(
        "SELECT outcome, actor, details FROM audit_events WHERE action = 'custodians.rekey' ORDER BY txid, id",
      );
      const steps = rows.map((r) => {
        const details = (typeof r.details === "string" ? JSON.parse(r.details) : r.details) as {
          step: string;
          reason?: string;
        };
        return [details.step, r.outcome, details.reason ?? ""];
      });
      expect(steps).toEqual([
        ["staged", "success", ""],
        ["cancelled", "success", ""],
        ["staged", "success", ""],
        ["share", "failure", "UNSEAL_SHARE_INVALID"],
        ["share", "success", ""],
        ["verified", "success", ""],
        ["confirmed", "success", ""],
      ]);
      const text = JSON.stringify(rows);
      for (const share of staged.shares) expect(text).not.toContain(share.split(".")[4]);
    } finally {
      await core.close();
    }
  }, 120_000);
});
