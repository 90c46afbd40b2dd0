import type { KeyObject } from "node:crypto";
import { createPrivateKey, createPublicKey, generateKeyPair } from "node:crypto";
import { promisify } from "node:util";
import type { CryptoKey } from "jose";
import { calculateJwkThumbprint } from "jose";
import { envelopeDekId, openEnvelope, sealEnvelope } from "../../crypto/envelope.js";
import { zeroize } from "../../crypto/secret.js";
import type { CaptureJweAlg } from "../../jose/algorithms.js";
import {
  exportPrivateKeyPkcs8,
  generateCaptureKeyPair,
  importCapturePrivateKey,
} from "../../jose/capture-keys.js";
import type { KeyRing } from "../../keys/key-ring.js";
import { ACTIVE_RECHECK_MS, SYSTEM_KEY_OWNER } from "../../keys/key-ring.js";
import type { Database } from "../../store/database.js";
import type { VaultJoseKeyRow } from "../../store/jose-keys-repo.js";
import {
  deleteExpiredVaultJoseKeys,
  insertVaultJoseKey,
  listUsableVaultJoseKeys,
  retireVaultJoseKey,
} from "../../store/jose-keys-repo.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";

const generate = promisify(generateKeyPair);

/**
 * The vault's JOSE algorithms (RFC 7518): capture payloads are encrypted to an ECDH-ES+A256KW
 * key on P-256 (§4.6) or an RSA-OAEP-256 key (§4.3); capture sessions are signed with ES256
 * (§3.4). RSA keys are 3072 bits (NIST SP 800-57 Part 1 Table 2: 128-bit strength, as P-256).
 */
export const VAULT_JOSE_ALGS = ["ECDH-ES+A256KW", "RSA-OAEP-256", "ES256"] as const;
/**
 * Admin access tokens are signed with EdDSA over Ed25519 (RFC 8037), by a key set of its own
 * (a second `VaultJoseKeys` with `algs: ACCESS_TOKEN_ALGS`): one key, one purpose (NIST SP 800-57
 * Part 1 §5.2), so a capture session can never pass as an access token, nor the reverse.
 */
export const ACCESS_TOKEN_ALGS = ["EdDSA"] as const;
export type VaultJoseAlg = (typeof VAULT_JOSE_ALGS)[number] | (typeof ACCESS_TOKEN_ALGS)[number];

/** A usable key pair, its private half unwrapped into an OpenSSL key object (never exported). */
export interface VaultJoseKey {
  readonly kid: string;
  readonly use: "enc" | "sig";
  readonly alg: VaultJoseAlg;
  readonly publicJwk: Readonly<Record<string, unknown>>;
  /** A non-extractable CryptoKey for encryption keys; an OpenSSL key object for signing keys. */
  readonly privateKey: CryptoKey | KeyObject;
  /** A signing key's public half (verification); undefined for encryption keys. */
  readonly publicKey: KeyObject | undefined;
  readonly createdAt: Date;
  /** Set once a newer key took over; the key is still accepted until `expiresAt`. */
  readonly retiredAt: Date | null;
  readonly expiresAt: Date | null;
}

export interface VaultJoseKeysOptions {
  /**
   * How long a rotated-out key is still accepted: longer than a capture session (15 min), a
   * capture JWE (5 min) and the JWKS cache lifetime, so nothing in flight breaks at rotation.
   */
  readonly overlapMs: number;
  /** How long a key is current before the scheduled pass replaces it (PCI DSS 3.6.4). */
  readonly cryptoperiodMs: number;
  /**
   * The algorithms this set holds, one current key each; keys of other algorithms in the table
   * belong to another set and are never loaded here. Default: the capture keys.
   */
  readonly algs?: readonly VaultJoseAlg[];
}

export const DEFAULT_JOSE_OVERLAP_MS = 3_600_000;
export const DEFAULT_JOSE_CRYPTOPERIOD_MS = 90 * 86_400_000;

function useOf(alg: VaultJoseAlg): "enc" | "sig" {
  return alg === "ES256" || alg === "EdDSA" ? "sig" : "enc";
}

/** A new key pair's private half as PKCS#8 bytes (its public half is derived when it loads). */
async function newPrivateKey(alg: VaultJoseAlg): Promise<Uint8Array> {
  if (alg === "EdDSA") {
    return (await generate("ed25519")).privateKey.export({ format: "der", type: "pkcs8" });
  }
  if (alg !== "ES256") return exportPrivateKeyPkcs8((await generateCaptureKeyPair(alg)).privateKey);
  const pair = await generate("ec", { namedCurve: "P-256" });
  return pair.privateKey.export({ format: "der", type: "pkcs8" });
}

/**
 * The public JWK published for a private key, derived from the key itself (never trusted from a
 * column): kid is its RFC 7638 thumbprint, with the use and alg of the key's role.
 */
async function publicJwkOf(
  der: Uint8Array,
  alg: VaultJoseAlg,
): Promise<Record<string, unknown> & { kid: string }> {
  const pub = createPublicKey(
    createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" }),
  );
  const jwk = pub.export({ format: "jwk" }) as Record<string, string>;
  const members =
    jwk.kty === "RSA"
      ? { kty: "RSA", n: jwk.n, e: jwk.e }
      : jwk.kty === "OKP"
        ? { kty: "OKP", crv: jwk.crv, x: jwk.x }
        : { kty: "EC", crv: jwk.crv, x: jwk.x, y: jwk.y };
  const kid = await calculateJwkThumbprint(members as Parameters<typeof calculateJwkThumbprint>[0]);
  return { ...members, kid, use: useOf(alg), alg };
}

/** The envelope context of a private key: bound to its kid and algorithm. */
function contextOf(kid: string, alg: string) {
  return { tenantId: SYSTEM_KEY_OWNER, objectId: `jose:${alg}:${kid}`, purpose: "jose" as const };
}

/**
 * The vault's capture encryption keys and session signing key: made on first use, rotated with
 * an overlap, private halves sealed at rest under a system `jose` DEK, which the KEK wraps
 * (PCI DSS 3.6.1.2: keys stored encrypted under a key-encrypting key). Every node re-reads the
 * set at most every ACTIVE_RECHECK_MS, and at once when it meets a kid it does not know; a node
 * that finds an algorithm without a current key makes one (so a failure never leaves one out).
 */
export class VaultJoseKeys {
  private loaded = new Map<string, VaultJoseKey>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;
  private ensuring: Promise<void> | undefined;
  private readonly algs: readonly VaultJoseAlg[];

  constructor(
    private readonly db: Database,
    private readonly keys: KeyRing,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
    private readonly options: VaultJoseKeysOptions = {
      overlapMs: DEFAULT_JOSE_OVERLAP_MS,
      cryptoperiodMs: DEFAULT_JOSE_CRYPTOPERIOD_MS,
    },
  ) {
    this.algs = options.algs ?? VAULT_JOSE_ALGS;
  }

  /** Makes sure a current key of every algorithm exists, and loads the set. */
  ensure(): Promise<void> {
    this.ensuring ??= (async () => {
      await this.refresh(true);
      for (const alg of this.algs) {
        if (this.current(alg) === undefined) await this.create(alg, "system", undefined);
      }
      await this.refresh(true);
    })().finally(() => {
      this.ensuring = undefined;
    });
    return this.ensuring;
  }

  /** Every key still accepted, current ones first (the inventory; PCI DSS 3.6.1.1). */
  async describe(): Promise<VaultJoseKey[]> {
    await this.fresh();
    return this.usable();
  }

  /** The public keys capture clients may encrypt to: current ones first. */
  async encryptionJwks(): Promise<Record<string, unknown>[]> {
    await this.fresh();
    return this.usable()
      .filter((key) => key.use === "enc")
      .map((key) => ({ ...key.publicJwk }));
  }

  /** The current key of an algorithm (new work is done with it). */
  async currentKey(alg: VaultJoseAlg): Promise<VaultJoseKey> {
    await this.fresh();
    const key = this.current(alg);
    if (key === undefined) throw new Error(`no current ${alg} key`);
    return key;
  }

  /** A key still accepted, by kid; an unknown kid makes this node re-read the set once. */
  async findKey(kid: string, use: "enc" | "sig"): Promise<VaultJoseKey | undefined> {
    await this.fresh();
    let key = this.loaded.get(kid);
    if (key === undefined && Date.now() - this.loadedAt > 1_000) {
      await this.refresh(true);
      key = this.loaded.get(kid);
    }
    if (key === undefined || key.use !== use) return undefined;
    if (key.expiresAt !== null && key.expiresAt <= this.clock.now()) return undefined;
    return key;
  }

  /**
   * Replaces the current key of every algorithm; the previous ones stay accepted for the overlap.
   * PCI DSS 3.6.4, 3.7.4: keys are changed at the end of their cryptoperiod or on suspicion.
   */
  async rotate(actor: string): Promise<{ retired: string[]; created: string[] }> {
    const retired: string[] = [];
    const created: string[] = [];
    for (const alg of this.algs) {
      const done = await this.create(alg, actor, { createdBefore: undefined });
      if (done?.retired !== undefined) retired.push(done.retired);
      if (done !== undefined) created.push(done.kid);
    }
    await this.refresh(true);
    return { retired, created };
  }

  /**
   * The scheduled pass: replaces each current key older than its cryptoperiod (only the node
   * whose retirement wins the key row makes the successor, so several nodes rotate once), and
   * deletes keys whose overlap ended: their private halves are gone for good (PCI DSS 3.7.5).
   */
  async rotateDue(actor: string): Promise<string[]> {
    await this.fresh();
    const now = this.clock.now();
    const cutoff = new Date(now.getTime() - this.options.cryptoperiodMs);
    const created: string[] = [];
    for (const alg of this.algs) {
      const current = this.current(alg);
      if (current === undefined || current.createdAt > cutoff) continue;
      const done = await this.create(alg, actor, { createdBefore: cutoff });
      if (done !== undefined) created.push(done.kid);
    }
    await this.db.transaction(async (tx) => {
      for (const kid of await deleteExpiredVaultJoseKeys(tx, now)) {
        await this.audit.record(tx, {
          tenantId: undefined,
          actor,
          action: "jose_key.destroy",
          objectId: kid,
          outcome: "success",
          details: {},
        });
      }
    });
    if (created.length > 0) await this.refresh(true);
    return created;
  }

  private usable(): VaultJoseKey[] {
    const now = this.clock.now();
    return (
      [...this.loaded.values()]
        .filter((key) => key.expiresAt === null || key.expiresAt > now)
        // Current keys first, the default algorithm (ECDH-ES) before the others, newest first.
        .sort(
          (a, b) =>
            Number(a.retiredAt !== null) - Number(b.retiredAt !== null) ||
            this.algs.indexOf(a.alg) - this.algs.indexOf(b.alg) ||
            b.createdAt.getTime() - a.createdAt.getTime(),
        )
    );
  }

  private current(alg: VaultJoseAlg): VaultJoseKey | undefined {
    return this.usable().find((key) => key.alg === alg && key.retiredAt === null);
  }

  /** Re-reads the set when due; makes any missing current key. */
  private async fresh(): Promise<void> {
    if (Date.now() - this.loadedAt >= ACTIVE_RECHECK_MS) await this.refresh(false);
    if (this.algs.some((alg) => this.current(alg) === undefined)) await this.ensure();
  }

  private refresh(force: boolean): Promise<void> {
    if (!force && Date.now() - this.loadedAt < ACTIVE_RECHECK_MS) return Promise.resolve();
    this.refreshing ??= this.load().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    const rows = await listUsableVaultJoseKeys(this.db, this.clock.now());
    const next = new Map<string, VaultJoseKey>();
    for (const row of rows) {
      if (!this.algs.includes(row.alg as VaultJoseAlg)) continue;
      const known = this.loaded.get(row.kid);
      next.set(
        row.kid,
        known !== undefined && known.retiredAt?.getTime() === row.retired_at?.getTime()
          ? known
          : await this.unseal(row),
      );
    }
    this.loaded = next;
    this.loadedAt = Date.now();
  }

  private async unseal(row: VaultJoseKeyRow): Promise<VaultJoseKey> {
    const alg = row.alg as VaultJoseAlg;
    const dek = await this.keys.keyById(envelopeDekId(row.private_key), SYSTEM_KEY_OWNER, "jose");
    const der = openEnvelope(row.private_key, dek.material, contextOf(row.kid, alg));
    try {
      const publicJwk = await publicJwkOf(der, alg);
      if (publicJwk.kid !== row.kid || useOf(alg) !== row.use) {
        throw new Error(`vault JOSE key ${row.kid} does not match its private key`);
      }
      // Encryption keys become non-extractable WebCrypto keys (what the JOSE layer decrypts
      // with); signing keys stay OpenSSL key objects, for signing and their public half.
      const signing =
        useOf(alg) === "sig"
          ? createPrivateKey({ key: der, format: "der", type: "pkcs8" })
          : undefined;
      return {
        kid: row.kid,
        use: row.use,
        alg,
        publicJwk,
        privateKey: signing ?? (await importCapturePrivateKey(der, alg as CaptureJweAlg)),
        publicKey: signing === undefined ? undefined : createPublicKey(signing),
        createdAt: row.created_at,
        retiredAt: row.retired_at,
        expiresAt: row.expires_at,
      };
    } finally {
      zeroize(der);
    }
  }

  /**
   * Makes a new current key of `alg`. With `replace`, the current key (made before
   * `createdBefore`, when given) is retired in the same transaction, so there is never a moment
   * without a current key; undefined when another node got there first.
   */
  private async create(
    alg: VaultJoseAlg,
    actor: string,
    replace: { readonly createdBefore: Date | undefined } | undefined,
  ): Promise<{ kid: string; retired: string | undefined } | undefined> {
    const der = await newPrivateKey(alg);
    try {
      const { kid } = await publicJwkOf(der, alg);
      const dek = await this.keys.activeKey(SYSTEM_KEY_OWNER, "jose", 1);
      const sealed = sealEnvelope({
        dekId: dek.id,
        key: dek.material,
        plaintext: der,
        context: contextOf(kid, alg),
      });
      const now = this.clock.now();
      const expiresAt = new Date(now.getTime() + this.options.overlapMs);
      return await this.db.transaction(async (tx) => {
        let retired: string | undefined;
        if (replace !== undefined) {
          retired = await retireVaultJoseKey(tx, alg, now, expiresAt, replace.createdBefore);
          if (retired === undefined && replace.createdBefore !== undefined) return undefined;
          if (retired !== undefined) {
            await this.audit.record(tx, {
              tenantId: undefined,
              actor,
              action: "jose_key.rotate",
              objectId: retired,
              outcome: "success",
              details: { alg, accepted_until: expiresAt.toISOString() },
            });
          }
        }
        const inserted = await insertVaultJoseKey(tx, {
          kid,
          use: useOf(alg),
          alg,
          private_key: sealed,
          created_at: now,
          retired_at: null,
          expires_at: null,
        });
        // Another node made the current key of this algorithm first: that one stands.
        if (!inserted) return undefined;
        await this.audit.record(tx, {
          tenantId: undefined,
          actor,
          action: "jose_key.create",
          objectId: kid,
          outcome: "success",
          details: { alg, use: useOf(alg) },
        });
        return { kid, retired };
      });
    } finally {
      zeroize(der);
    }
  }
}
