import { constantTimeEqual } from "../crypto/compare.js";
import { hmacSha256 } from "../crypto/hmac.js";
import { randomBytes } from "../crypto/random.js";
import { encodeBase62 } from "../domain/base62.js";
import { cidrMatcher } from "../domain/cidr.js";
import type { Scope } from "../domain/scopes.js";
import { isScope } from "../domain/scopes.js";
import { VaultError } from "../errors/registry.js";
import type { KeyRing } from "../keys/key-ring.js";
import type { ApiKeyRow, ApiKeyUsageRow } from "../store/api-keys-repo.js";
import {
  addApiKeyUsage,
  findApiKey,
  insertApiKey,
  listApiKeys,
  markRotated,
  revokeApiKey,
} from "../store/api-keys-repo.js";
import type { Database, SqlClient } from "../store/database.js";
import type { AuditTrail } from "./audit/audit-trail.js";
import { SYSTEM_OWNER } from "./audit/audit-trail.js";
import type { Clock } from "./clock.js";
import type { AuthResult, PresentationContext } from "./principal.js";

export type { Environment } from "../keys/key-manager.js";
export type { AuthResult, Principal } from "./principal.js";

import type { Environment } from "../keys/key-manager.js";

export interface ApiKeyView {
  readonly id: string;
  readonly tenantId: string;
  readonly environment: Environment;
  readonly name: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: Date;
  readonly createdBy: string | null;
  readonly revokedAt: Date | null;
  readonly expiresAt: Date | null;
  readonly allowedCidrs: readonly string[];
  readonly clientCertSha256: string | null;
  readonly rotatedTo: string | null;
  /** Usage as of the last flush (every node flushes every few seconds). */
  readonly lastUsedAt: Date | null;
  readonly useCount: number;
}

export interface NewApiKey {
  readonly tenantId: string;
  readonly environment: Environment;
  readonly name: string;
  readonly scopes: readonly Scope[];
  readonly actor: string;
  readonly expiresAt?: Date | null;
  /** Canonical CIDR ranges (domain/cidr.ts parseCidr); empty or absent = any address. */
  readonly allowedCidrs?: readonly string[];
  readonly clientCertSha256?: string | null;
}

// pv_<env>_<22 base62: 128-bit id>_<43 base62: 256-bit secret>
const KEY_PATTERN = /^pv_(live|test)_([0-9A-Za-z]{22})_([0-9A-Za-z]{43})$/;
const ID_BYTES = 16;
const MAX_CACHED_KEYS = 10_000;
const SECRET_BYTES = 32;
/** How often this node writes its batched last-used times and use counts. */
export const USAGE_FLUSH_INTERVAL_MS = 5_000;
/** The longest overlap a rotation may give the old secret. */
export const MAX_ROTATION_OVERLAP_SECONDS = 7 * 86_400;

function toView(row: ApiKeyRow & Partial<ApiKeyUsageRow>): ApiKeyView {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    environment: row.environment,
    name: row.name,
    scopes: row.scopes.filter(isScope),
    createdAt: row.created_at,
    createdBy: row.created_by,
    revokedAt: row.revoked_at,
    expiresAt: row.expires_at,
    allowedCidrs: row.allowed_cidrs,
    clientCertSha256: row.client_cert_sha256,
    rotatedTo: row.rotated_to,
    lastUsedAt: row.last_used_at ?? null,
    useCount: Number(row.use_count ?? 0),
  };
}

/**
 * API keys: `pv_live_<id>_<secret>` / `pv_test_<id>_<secret>`. The secret has 256 random bits
 * and is stored only as HMAC-SHA256 under the vault's `apikey` system key (a server secret that
 * lives wrapped by the KEK), so a copy of the database yields no usable key (PCI DSS 8.3.2).
 * Lookup is by id; the MAC comparison is constant-time, and an unknown id costs the same MAC.
 *
 * Lifecycle (PCI DSS 8.6.3, 8.3.9 for application accounts): optional expiry, allowed client
 * ranges, an optional client-certificate binding, rotation with an overlap in which both secrets
 * work, revocation at once, and last-used time and use counts.
 */
export class ApiKeyService {
  private readonly cache = new Map<string, { row: ApiKeyRow; expiresAt: number }>();
  private readonly matchers = new Map<string, (ip: string) => boolean>();
  private usage = new Map<string, { count: number; lastUsedAt: Date }>();
  private flushing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  /**
   * `cacheTtlMs`: how long a key record read from the store is reused for authentication (0 turns
   * the cache off). The secret is MAC-checked on every request either way; what the cache delays is
   * seeing a revocation made by another process or node — at most this long. A revocation made
   * through this service takes effect at once here.
   */
  constructor(
    private readonly db: Database,
    private readonly keys: KeyRing,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
    private readonly cacheTtlMs = 0,
  ) {}

  async create(input: NewApiKey, tx?: SqlClient): Promise<{ key: ApiKeyView; secret: string }> {
    const publicId = encodeBase62(randomBytes(ID_BYTES));
    const secret = encodeBase62(randomBytes(SECRET_BYTES));
    const row: ApiKeyRow = {
      id: `key_${publicId}`,
      tenant_id: input.tenantId,
      environment: input.environment,
      name: input.name,
      scopes: [...new Set(input.scopes)],
      secret_mac: await this.macOf(secret),
      created_at: this.clock.now(),
      revoked_at: null,
      expires_at: input.expiresAt ?? null,
      allowed_cidrs: [...(input.allowedCidrs ?? [])],
      client_cert_sha256: input.clientCertSha256 ?? null,
      rotated_to: null,
      created_by: input.actor,
    };
    const write = async (client: SqlClient) => {
      await insertApiKey(client, row);
      await this.audit.record(client, {
        tenantId: row.tenant_id,
        actor: input.actor,
        action: "apikey.create",
        objectId: row.id,
        outcome: "success",
        details: {
          environment: row.environment,
          scopes: row.scopes.join(" "),
          expires_at: row.expires_at?.toISOString() ?? "",
          allowed_cidrs: row.allowed_cidrs.join(" "),
          cert_bound: row.client_cert_sha256 !== null,
        },
      });
    };
    await (tx === undefined ? this.db.transaction(write) : write(tx));
    return { key: toView(row), secret: `pv_${input.environment}_${publicId}_${secret}` };
  }

  async list(tenantId?: string): Promise<ApiKeyView[]> {
    await this.flushUsage();
    return (await listApiKeys(this.db, tenantId)).map(toView);
  }

  /** One key of a tenant; another tenant's key is undefined, exactly like a missing one. */
  async get(tenantId: string, id: string): Promise<ApiKeyView | undefined> {
    return (await this.list(tenantId)).find((key) => key.id === id);
  }

  /**
   * Replaces a key: the successor gets the same name, environment, scopes, ranges, binding and
   * expiry and a new secret; the old secret keeps working for `overlapSeconds` (0 = ends now),
   * then expires. A key already rotated, revoked or expired cannot be rotated again.
   */
  async rotate(
    tenantId: string,
    id: string,
    overlapSeconds: number,
    actor: string,
  ): Promise<{ key: ApiKeyView; secret: string; previous: ApiKeyView } | undefined> {
    const result = await this.db.transaction(async (tx) => {
      const old = await findApiKey(tx, id, { forUpdate: true });
      if (old === undefined || old.tenant_id !== tenantId) return undefined;
      const now = this.clock.now();
      if (
        old.revoked_at !== null ||
        old.rotated_to !== null ||
        (old.expires_at !== null && old.expires_at <= now)
      ) {
        throw new VaultError("API_KEY_NOT_ROTATABLE");
      }
      const created = await this.create(
        {
          tenantId,
          environment: old.environment,
          name: old.name,
          scopes: old.scopes.filter(isScope),
          actor,
          expiresAt: old.expires_at,
          allowedCidrs: old.allowed_cidrs,
          clientCertSha256: old.client_cert_sha256,
        },
        tx,
      );
      const overlapEnds = new Date(now.getTime() + overlapSeconds * 1000);
      await markRotated(tx, id, created.key.id, overlapEnds);
      await this.audit.record(tx, {
        tenantId,
        actor,
        action: "apikey.rotate",
        objectId: id,
        outcome: "success",
        details: { successor: created.key.id, overlap_ends: overlapEnds.toISOString() },
      });
      const previous = await findApiKey(tx, id);
      return { ...created, previous: toView(previous as ApiKeyRow) };
    });
    this.cache.delete(id);
    return result;
  }

  /**
   * Revokes a key at once on this node (other nodes within their cache TTL). With `tenantId`,
   * another tenant's key is treated as missing.
   */
  async revoke(id: string, actor: string, tenantId?: string): Promise<boolean> {
    this.cache.delete(id);
    return this.db.transaction(async (tx) => {
      const row = await findApiKey(tx, id);
      if (row === undefined || (tenantId !== undefined && row.tenant_id !== tenantId)) return false;
      if (!(await revokeApiKey(tx, id, this.clock.now()))) return false;
      await this.audit.record(tx, {
        tenantId: row.tenant_id,
        actor,
        action: "apikey.revoke",
        objectId: id,
        outcome: "success",
        details: {},
      });
      return true;
    });
  }

  /**
   * Checks a presented key. One path whether or not the id exists: the MAC is computed and
   * compared against a dummy of the same length for an unknown id, and every later check
   * (revoked, expired, environment, client range, certificate binding) runs only for a key whose
   * secret matched, so none of them tells anything about keys the caller does not hold.
   */
  async authenticate(
    presented: string,
    context: PresentationContext = { ip: "", clientCertSha256: undefined },
  ): Promise<AuthResult> {
    const match = KEY_PATTERN.exec(presented);
    if (match === null) return { ok: false, reason: "invalid", keyId: undefined };
    const [, environment, publicId, secret] = match as unknown as [
      string,
      Environment,
      string,
      string,
    ];
    const keyId = `key_${publicId}`;
    const row = await this.lookup(keyId);
    const mac = await this.macOf(secret);
    const stored = row?.secret_mac ?? Buffer.alloc(mac.length);
    const secretMatches = constantTimeEqual(mac, stored) && row !== undefined;
    if (!secretMatches || row.environment !== environment)
      // The id is echoed to the audit trail only if it names a real key: an unknown id is
      // attacker-chosen text (it could even be a card number).
      return { ok: false, reason: "invalid", keyId: row === undefined ? undefined : keyId };
    const denied = (reason: Exclude<AuthResult, { ok: true }>["reason"]): AuthResult => ({
      ok: false,
      reason,
      keyId,
      tenantId: row.tenant_id,
    });
    if (row.revoked_at !== null) return denied("revoked");
    const now = this.clock.now();
    if (row.expires_at !== null && row.expires_at <= now) return denied("expired");
    if (!this.matcherOf(row)(context.ip)) return denied("ip_not_allowed");
    if (row.client_cert_sha256 !== null && row.client_cert_sha256 !== context.clientCertSha256)
      return denied("cert_required");
    this.countUse(row.id, now);
    return {
      ok: true,
      principal: {
        kind: "api_key",
        tenantId: row.tenant_id,
        keyId: row.id,
        environment: row.environment,
        scopes: new Set(row.scopes.filter(isScope)),
      },
    };
  }

  /**
   * Writes the batched usage counters: one UPDATE for every key used since the last flush
   * (last-used time and use counts are bookkeeping; one write per request would cost more than
   * the request). Runs every USAGE_FLUSH_INTERVAL_MS once started, and on close.
   */
  async flushUsage(): Promise<void> {
    while (this.flushing !== undefined) await this.flushing;
    if (this.usage.size === 0) return;
    const batch = this.usage;
    this.usage = new Map();
    this.flushing = addApiKeyUsage(
      this.db,
      [...batch].map(([id, u]) => ({ id, count: u.count, lastUsedAt: u.lastUsedAt })),
    )
      .catch((err: unknown) => {
        // Not lost: the counts go back into the next batch.
        for (const [id, u] of batch) this.countUse(id, u.lastUsedAt, u.count);
        throw err;
      })
      .finally(() => {
        this.flushing = undefined;
      });
    await this.flushing;
  }

  /** Starts the periodic usage flush (the server does; tests flush by hand). */
  startUsageFlush(onError: (err: unknown) => void): void {
    this.timer ??= setInterval(() => {
      this.flushUsage().catch(onError);
    }, USAGE_FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.flushUsage();
  }

  private countUse(id: string, at: Date, uses = 1): void {
    const entry = this.usage.get(id);
    if (entry === undefined) this.usage.set(id, { count: uses, lastUsedAt: at });
    else {
      entry.count += uses;
      if (at > entry.lastUsedAt) entry.lastUsedAt = at;
    }
  }

  private matcherOf(row: ApiKeyRow): (ip: string) => boolean {
    const signature = row.allowed_cidrs.join(",");
    let matcher = this.matchers.get(signature);
    if (matcher === undefined) {
      matcher = cidrMatcher(row.allowed_cidrs);
      if (this.matchers.size >= MAX_CACHED_KEYS) this.matchers.clear();
      this.matchers.set(signature, matcher);
    }
    return matcher;
  }

  /** Finds a key record, from the cache when fresh. Only existing keys are cached. */
  private async lookup(keyId: string): Promise<ApiKeyRow | undefined> {
    const now = Date.now();
    const cached = this.cache.get(keyId);
    if (cached !== undefined && cached.expiresAt > now) return cached.row;
    const row = await findApiKey(this.db, keyId);
    this.cache.delete(keyId);
    if (row !== undefined && this.cacheTtlMs > 0) {
      // Bounded: the oldest entry goes first (Map keeps insertion order).
      if (this.cache.size >= MAX_CACHED_KEYS)
        this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(keyId, { row, expiresAt: now + this.cacheTtlMs });
    }
    return row;
  }

  private async macOf(secret: string): Promise<Buffer> {
    const key = await this.keys.activeKey(SYSTEM_OWNER, "apikey");
    return hmacSha256(
      key.material,
      Buffer.from("payvault/apikey/v1:"),
      Buffer.from(secret, "ascii"),
    );
  }
}
