import { constantTimeEqual } from "../crypto/compare.js";
import { hmacSha256 } from "../crypto/hmac.js";
import { randomBytes } from "../crypto/random.js";
import { encodeBase62 } from "../domain/base62.js";
import type { Scope } from "../domain/scopes.js";
import { isScope } from "../domain/scopes.js";
import type { KeyRing } from "../keys/key-ring.js";
import type { ApiKeyRow } from "../store/api-keys-repo.js";
import { findApiKey, insertApiKey, listApiKeys, revokeApiKey } from "../store/api-keys-repo.js";
import type { Database, SqlClient } from "../store/database.js";
import type { AuditTrail } from "./audit/audit-trail.js";
import { SYSTEM_OWNER } from "./audit/audit-trail.js";
import type { Clock } from "./clock.js";

export type { Environment } from "../keys/key-manager.js";

import type { Environment } from "../keys/key-manager.js";

/** An authenticated caller. */
export interface Principal {
  readonly tenantId: string;
  readonly keyId: string;
  readonly environment: Environment;
  readonly scopes: ReadonlySet<Scope>;
}

export interface ApiKeyView {
  readonly id: string;
  readonly tenantId: string;
  readonly environment: Environment;
  readonly name: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

export type AuthResult =
  | { readonly ok: true; readonly principal: Principal }
  | {
      readonly ok: false;
      readonly reason: "invalid" | "revoked";
      readonly keyId: string | undefined;
    };

// pv_<env>_<22 base62: 128-bit id>_<43 base62: 256-bit secret>
const KEY_PATTERN = /^pv_(live|test)_([0-9A-Za-z]{22})_([0-9A-Za-z]{43})$/;
const ID_BYTES = 16;
const MAX_CACHED_KEYS = 10_000;
const SECRET_BYTES = 32;

function toView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    environment: row.environment,
    name: row.name,
    scopes: row.scopes.filter(isScope),
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}

/**
 * API keys: `pv_live_<id>_<secret>` / `pv_test_<id>_<secret>`. The secret has 256 random bits
 * and is stored only as HMAC-SHA256 under the vault's `apikey` system key (a server secret that
 * lives wrapped by the KEK), so a copy of the database yields no usable key (PCI DSS 8.3.2).
 * Lookup is by id; the MAC comparison is constant-time, and an unknown id costs the same MAC.
 */
export class ApiKeyService {
  private readonly cache = new Map<string, { row: ApiKeyRow; expiresAt: number }>();

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

  async create(
    input: {
      tenantId: string;
      environment: Environment;
      name: string;
      scopes: readonly Scope[];
      actor: string;
    },
    tx?: SqlClient,
  ): Promise<{ key: ApiKeyView; secret: string }> {
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
    };
    const write = async (client: SqlClient) => {
      await insertApiKey(client, row);
      await this.audit.record(client, {
        tenantId: row.tenant_id,
        actor: input.actor,
        action: "apikey.create",
        objectId: row.id,
        outcome: "success",
        details: { environment: row.environment, scopes: row.scopes.join(" ") },
      });
    };
    await (tx === undefined ? this.db.transaction(write) : write(tx));
    return { key: toView(row), secret: `pv_${input.environment}_${publicId}_${secret}` };
  }

  async list(tenantId?: string): Promise<ApiKeyView[]> {
    return (await listApiKeys(this.db, tenantId)).map(toView);
  }

  async revoke(id: string, actor: string): Promise<boolean> {
    this.cache.delete(id);
    return this.db.transaction(async (tx) => {
      const row = await findApiKey(tx, id);
      if (row === undefined || !(await revokeApiKey(tx, id, this.clock.now()))) return false;
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

  async authenticate(presented: string): Promise<AuthResult> {
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
    // Same work whether or not the id exists: compare against a dummy MAC of the same length.
    const stored = row?.secret_mac ?? Buffer.alloc(mac.length);
    const secretMatches = constantTimeEqual(mac, stored) && row !== undefined;
    if (!secretMatches || row.environment !== environment)
      // The id is echoed to the audit trail only if it names a real key: an unknown id is
      // attacker-chosen text (it could even be a card number).
      return { ok: false, reason: "invalid", keyId: row === undefined ? undefined : keyId };
    if (row.revoked_at !== null) return { ok: false, reason: "revoked", keyId };
    return {
      ok: true,
      principal: {
        tenantId: row.tenant_id,
        keyId: row.id,
        environment: row.environment,
        scopes: new Set(row.scopes.filter(isScope)),
      },
    };
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
