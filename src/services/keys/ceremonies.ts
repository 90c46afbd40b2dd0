import { newId } from "../../crypto/random.js";
import { VaultError } from "../../errors/registry.js";
import type { Environment, KeyManager } from "../../keys/key-manager.js";
import { ENVIRONMENTS, isEnvironment } from "../../keys/key-manager.js";
import { SYSTEM_KEY_OWNER } from "../../keys/key-ring.js";
import type { RekeyStatus, RekeyVerifyResult } from "../../keys/local-key-manager.js";
import { LocalKeyManager } from "../../keys/local-key-manager.js";
import { isValidShareSplit, UnsealError } from "../../keys/seal.js";
import { insertAuditEvent } from "../../store/audit-repo.js";
import { findDataKey } from "../../store/data-keys-repo.js";
import type { Database } from "../../store/database.js";
import type { CeremonyRow } from "../../store/key-lifecycle-repo.js";
import {
  decideCeremonyAudited,
  findCeremony,
  insertCeremonyAudited,
  listCeremonies,
} from "../../store/key-lifecycle-repo.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { KeyLifecycle } from "./key-lifecycle.js";

export type CeremonyAction = CeremonyRow["action"];
export const CEREMONY_ACTIONS: readonly CeremonyAction[] = [
  "kek.rotate",
  "dek.destroy",
  "custodians.rekey",
];

/** Field error codes of the key-administration routes (docs/errors.md lists them). */
export const KEY_ADMIN_ISSUE_CODES = ["INVALID_PARAMETER", "SYSTEM_KEY"] as const;

/** How long a proposal waits for its second principal. */
export const CEREMONY_TTL_MS = 24 * 3600_000;

export interface CeremonyOutcome {
  readonly ceremony: CeremonyRow;
  /** What the execution produced (e.g. KEK versions, new custodian shares, shown once). */
  readonly result: Record<string, unknown>;
}

function invalid(field: string, message: string): VaultError {
  return new VaultError("VALIDATION_FAILED", {
    errors: [{ field, code: "INVALID_PARAMETER", message }],
  });
}

/**
 * Dual control and split knowledge (PCI DSS 3.6.1.2, 3.7.6): KEK rotation, DEK destruction and
 * custodian changes are proposed by one principal and run only when a different principal
 * approves before the proposal expires. Proposal, approval, rejection and the execution's
 * outcome are each in the audit chain.
 */
export class CeremonyService {
  constructor(
    private readonly db: Database,
    private readonly keyManager: KeyManager,
    private readonly lifecycle: KeyLifecycle,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async propose(
    action: string,
    params: Record<string, unknown>,
    actor: string,
  ): Promise<CeremonyRow> {
    const checked = this.checkParams(action, params);
    await this.checkTarget(checked, action);
    const now = this.clock.now();
    const row: CeremonyRow = {
      id: newId("cer"),
      action: action as CeremonyAction,
      params: checked,
      state: "pending",
      proposed_by: actor,
      proposed_at: now,
      expires_at: new Date(now.getTime() + CEREMONY_TTL_MS),
      decided_by: null,
      decided_at: null,
    };
    const event = await this.audit.build({
      tenantId: undefined,
      actor,
      action: "ceremony.propose",
      objectId: row.id,
      outcome: "success",
      details: { ceremony: row.action, ...checked },
    });
    await insertCeremonyAudited(this.db, row, event);
    return row;
  }

  async list(): Promise<CeremonyRow[]> {
    return listCeremonies(this.db, 100);
  }

  async get(id: string): Promise<CeremonyRow> {
    const row = await findCeremony(this.db, id);
    if (row === undefined) throw new VaultError("CEREMONY_NOT_FOUND");
    return row;
  }

  /** The second principal's approval: executes the ceremony. */
  async approve(id: string, actor: string): Promise<CeremonyOutcome> {
    const row = await this.decidable(id, actor);
    const event = await this.audit.build({
      tenantId: undefined,
      actor,
      action: "ceremony.approve",
      objectId: id,
      outcome: "success",
      details: { ceremony: row.action, proposed_by: row.proposed_by },
    });
    if (!(await decideCeremonyAudited(this.db, id, "executed", actor, this.clock.now(), event))) {
      throw new VaultError("CEREMONY_NOT_PENDING");
    }
    try {
      const result = await this.execute(row, `${actor}+${row.proposed_by}`);
      return { ceremony: await this.get(id), result };
    } catch (err) {
      // It did not run (or not to the end): the ceremony is marked failed, not executed, with
      // the failure in the audit chain; a new proposal is needed to try again.
      const failure = await this.audit.build({
        tenantId: undefined,
        actor,
        action: "ceremony.approve",
        objectId: id,
        outcome: "failure",
        details: { ceremony: row.action, reason: "execution_failed" },
      });
      await this.db.transaction(async (tx) => {
        await tx.query(
          "UPDATE key_ceremonies SET state = 'failed' WHERE id = $1 AND state = 'executed'",
          [id],
        );
        await insertAuditEvent(tx, failure);
      });
      throw err;
    }
  }

  async reject(id: string, actor: string): Promise<CeremonyRow> {
    const row = await this.decidable(id, actor);
    const event = await this.audit.build({
      tenantId: undefined,
      actor,
      action: "ceremony.reject",
      objectId: id,
      outcome: "success",
      details: { ceremony: row.action },
    });
    if (!(await decideCeremonyAudited(this.db, id, "rejected", actor, this.clock.now(), event))) {
      throw new VaultError("CEREMONY_NOT_PENDING");
    }
    return this.get(id);
  }

  /** The custodian rekey staged by an approved `custodians.rekey`, if it awaits confirmation. */
  async rekeyStatus(): Promise<RekeyStatus> {
    if (!(this.keyManager instanceof LocalKeyManager)) {
      return {
        pending: false,
        setId: undefined,
        threshold: 0,
        shares: 0,
        progress: 0,
        stagedAt: undefined,
        ceremonyId: undefined,
      };
    }
    return this.keyManager.rekeyStatus();
  }

  /**
   * One custodian's NEW share toward confirming a staged custodian rekey (PCI DSS 3.6.1.2,
   * 3.7.6). The old seal stays authoritative until a threshold of the new shares opens the staged
   * one; the switch happens only once its audit event is written. Every accepted or refused
   * share and the switch are audited (never the share itself).
   */
  async verifyRekeyShare(share: string, actor: string): Promise<RekeyVerifyResult> {
    const manager = this.rekeyable();
    let result: RekeyVerifyResult;
    try {
      result = await manager.submitRekeyShare(share, {
        beforeCommit: (setId) => this.recordRekey(actor, setId, "success", { step: "verified" }),
      });
    } catch (err) {
      if (err instanceof UnsealError) {
        await this.recordRekey(actor, manager.knownRekey().setId, "failure", {
          step: "share",
          reason: err.code,
        });
      }
      throw err;
    }
    await this.recordRekey(actor, result.setId, "success", {
      step: result.confirmed ? "confirmed" : "share",
      progress: result.progress,
      threshold: result.threshold,
      shares: result.shares,
    });
    return result;
  }

  /** Drops a staged custodian rekey: its shares never work; the current shares are untouched. */
  async cancelRekey(actor: string): Promise<{ cancelled: string; status: RekeyStatus }> {
    const manager = this.rekeyable();
    let setId: string;
    try {
      ({ setId } = await manager.cancelRekey());
    } catch (err) {
      if (err instanceof UnsealError) {
        await this.recordRekey(actor, undefined, "failure", { step: "cancel", reason: err.code });
      }
      throw err;
    }
    await this.recordRekey(actor, setId, "success", { step: "cancelled" });
    return { cancelled: setId, status: manager.knownRekey() };
  }

  private rekeyable(): LocalKeyManager {
    if (!(this.keyManager instanceof LocalKeyManager)) {
      throw new UnsealError(
        "REKEY_NOT_PENDING",
        "Custodian shares exist only with the local KeyManager.",
      );
    }
    return this.keyManager;
  }

  private recordRekey(
    actor: string,
    setId: string | undefined,
    outcome: "success" | "failure",
    details: Record<string, string | number>,
  ): Promise<void> {
    return this.audit.record(this.db, {
      tenantId: undefined,
      actor,
      action: "custodians.rekey",
      objectId: setId,
      outcome,
      details,
    });
  }

  private async decidable(id: string, actor: string): Promise<CeremonyRow> {
    const row = await this.get(id);
    if (row.state !== "pending") throw new VaultError("CEREMONY_NOT_PENDING");
    if (row.expires_at.getTime() <= this.clock.now().getTime())
      throw new VaultError("CEREMONY_EXPIRED");
    if (row.proposed_by === actor) {
      await this.audit.record(this.db, {
        tenantId: undefined,
        actor,
        action: "ceremony.approve",
        objectId: id,
        outcome: "denied",
        details: { ceremony: row.action, reason: "self_approval" },
      });
      throw new VaultError("CEREMONY_SELF_APPROVAL");
    }
    return row;
  }

  private async execute(row: CeremonyRow, actor: string): Promise<Record<string, unknown>> {
    switch (row.action) {
      case "kek.rotate": {
        const environments =
          row.params.environment === "both"
            ? ENVIRONMENTS
            : [row.params.environment as Environment];
        const out: Record<string, unknown> = {};
        for (const environment of environments) {
          const { kek, rewrapped } = await this.lifecycle.rotateKek(environment, actor);
          out[environment] = { kek_id: kek.kekId, kek_version: kek.currentVersion, rewrapped };
        }
        return out;
      }
      case "dek.destroy":
        // Checked again: the key may have been destroyed (e.g. by retention) since the proposal.
        await this.checkTarget(row.params, row.action);
        return {
          destroyed: row.params.key_id,
          tokens_unreadable: (
            await this.lifecycle.destroyKey(
              String(row.params.key_id),
              actor,
              String(row.params.reason),
              { force: row.params.force === true },
            )
          ).tokens,
        };
      case "custodians.rekey": {
        if (!(this.keyManager instanceof LocalKeyManager)) {
          throw invalid("action", "custodian shares exist only with the local KeyManager");
        }
        const shares = Number(row.params.shares);
        const threshold = Number(row.params.threshold);
        // Staged, not switched (PCI DSS 3.6.1.2, 3.7.6): the current shares keep unsealing until
        // a threshold of the new ones is submitted back (verifyRekeyShare), so new shares lost on
        // the way to their custodians never leave the vault unrecoverable.
        const staged = await this.keyManager.rekey({ shares, threshold, ceremonyId: row.id });
        await this.audit.record(this.db, {
          tenantId: undefined,
          actor,
          action: "custodians.rekey",
          objectId: staged.setId,
          outcome: "success",
          details: {
            step: "staged",
            shares,
            threshold,
            ceremony: row.id,
            ...(staged.replacedSetId === undefined ? {} : { replaced: staged.replacedSetId }),
          },
        });
        return { share_set: staged.setId, shares: staged.shares, pending_confirmation: true };
      }
    }
  }

  /**
   * What the parameters name must exist and be fit for the action, at proposal time (so a
   * ceremony that cannot run is never put to a second principal) and again at execution.
   */
  private async checkTarget(params: CeremonyRow["params"], action: string) {
    if (action === "dek.destroy") {
      const key = await findDataKey(this.db, String(params.key_id));
      if (key === undefined) throw new VaultError("KEY_NOT_FOUND");
      if (key.owner === SYSTEM_KEY_OWNER) {
        throw new VaultError("VALIDATION_FAILED", {
          errors: [
            {
              field: "params.key_id",
              code: "SYSTEM_KEY",
              message: "The vault's own keys cannot be destroyed.",
            },
          ],
        });
      }
      if (key.destroyed_at !== null) throw new VaultError("KEY_DESTROYED");
      // PCI DSS 3.7.5: destroying a key that still protects card data makes it unrecoverable;
      // only an explicit `force: true` proposes that (checked again, under lock, when it runs).
      if (params.force !== true) {
        const tokens = await this.lifecycle.tokensUnderKey(key.id);
        if (tokens > 0) {
          throw new VaultError("KEY_IN_USE", {
            detail: `${tokens} token(s) are still under this key. Re-encrypt them first (payvault keys rotate --dek), or propose the destruction with force: their card data would become unrecoverable.`,
          });
        }
      }
    }
    if (action === "custodians.rekey" && !(this.keyManager instanceof LocalKeyManager)) {
      throw invalid("action", "custodian shares exist only with the local KeyManager");
    }
  }

  private checkParams(action: string, params: Record<string, unknown>): CeremonyRow["params"] {
    switch (action) {
      case "kek.rotate": {
        const environment = params.environment ?? "both";
        if (environment !== "both" && !isEnvironment(environment)) {
          throw invalid("params.environment", "environment must be live, test or both");
        }
        return { environment: environment as string };
      }
      case "dek.destroy": {
        const keyId = params.key_id;
        const reason = params.reason;
        if (typeof keyId !== "string" || !/^dek_[0-9A-Za-z]{1,64}$/.test(keyId)) {
          throw invalid("params.key_id", "key_id must be a DEK id (dek_…)");
        }
        if (typeof reason !== "string" || reason.length < 3 || reason.length > 200) {
          throw invalid("params.reason", "reason must be 3 to 200 characters");
        }
        if (params.force !== undefined && typeof params.force !== "boolean") {
          throw invalid("params.force", "force must be true or false");
        }
        return { key_id: keyId, reason, ...(params.force === true ? { force: true } : {}) };
      }
      case "custodians.rekey": {
        const shares = params.shares;
        const threshold = params.threshold;
        if (
          typeof shares !== "number" ||
          typeof threshold !== "number" ||
          !isValidShareSplit(shares, threshold)
        ) {
          throw invalid("params", "need whole numbers 2 <= threshold <= shares <= 255");
        }
        return { shares, threshold };
      }
      default:
        throw invalid("action", `action must be one of ${CEREMONY_ACTIONS.join(", ")}`);
    }
  }
}
