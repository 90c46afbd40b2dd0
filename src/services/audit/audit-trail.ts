import type { AuditEventInput, AuditEventRow } from "../../audit/audit-event.js";
import { buildEventRow } from "../../audit/audit-event.js";
import { VaultError } from "../../errors/registry.js";
import type { KeyRing, NewKey } from "../../keys/key-ring.js";
import { insertAuditEvent } from "../../store/audit-repo.js";
import type { SqlClient } from "../../store/database.js";
import type { Clock } from "../clock.js";

export { SYSTEM_KEY_OWNER as SYSTEM_OWNER } from "../../keys/key-ring.js";

import { SYSTEM_KEY_OWNER as SYSTEM_OWNER } from "../../keys/key-ring.js";

/**
 * Builds audit events (content + row MAC under the system `audit` key) and records them. Callers
 * that change data put the event in the same statement or transaction as the change; a failure
 * to write the event fails the operation (DESIGN: a sensitive operation fails if its audit
 * record cannot be written).
 */
export class AuditTrail {
  constructor(
    private readonly keys: KeyRing,
    private readonly clock: Clock,
  ) {}

  async build(input: AuditEventInput): Promise<AuditEventRow> {
    const key = await this.keys.activeKey(SYSTEM_OWNER, "audit");
    return buildEventRow(input, this.clock.now(), { id: key.id, material: key.material });
  }

  /**
   * The `key.create` event of a new DEK (PCI DSS 3.6.1.1, 10.2.1.2). The audit key's own
   * creation is MACed with that new key, since no other audit key exists yet.
   */
  async keyCreated(key: NewKey): Promise<AuditEventRow> {
    const input: AuditEventInput = {
      tenantId: key.owner === SYSTEM_OWNER ? undefined : key.owner,
      actor: "system",
      action: "key.create",
      objectId: key.id,
      outcome: "success",
      details: {
        purpose: key.purpose,
        environment: key.environment,
        epoch: key.epoch,
        version: key.version,
        algorithm: key.algorithm,
        kek_id: key.kekId,
        kek_version: key.kekVersion,
      },
    };
    if (key.owner === SYSTEM_OWNER && key.purpose === "audit") {
      return buildEventRow(input, this.clock.now(), { id: key.id, material: key.material });
    }
    return this.build(input);
  }

  /** Records one event on its own (or in the caller's transaction when `db` is one). */
  async record(db: SqlClient, input: AuditEventInput): Promise<void> {
    const row = await this.build(input);
    try {
      await insertAuditEvent(db, row);
    } catch (err) {
      throw new VaultError("AUDIT_UNAVAILABLE", { cause: err });
    }
  }
}
