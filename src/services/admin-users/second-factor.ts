import { verifyRecoveryCode } from "../../auth/recovery-codes.js";
import { generateTotpSecret, verifyTotp } from "../../auth/totp.js";
import type { SecretBytes } from "../../crypto/secret.js";
import type { AdminUserRow } from "../../store/admin-users-repo.js";
import {
  consumeRecoveryCode,
  consumeTotpStep,
  listRecoveryCodes,
} from "../../store/admin-users-repo.js";
import type { SqlClient } from "../../store/database.js";
import type { Clock } from "../clock.js";
import type { CredentialKeys } from "./credentials.js";

/** What the person typed as a second factor: a TOTP code, or one of their recovery codes. */
export interface SecondFactorInput {
  readonly code?: string | undefined;
  readonly recoveryCode?: string | undefined;
}

/** Why a second factor failed: for the audit trail only (the client sees one LOGIN_FAILED). */
export type SecondFactorFailure =
  | "code_missing"
  | "code_malformed"
  | "code_invalid"
  | "code_replayed"
  | "recovery_code_malformed"
  | "recovery_code_invalid"
  | "recovery_code_used";

export type SecondFactorCheck =
  | {
      readonly ok: true;
      readonly method: "totp" | "recovery_code";
      /**
       * Spends the factor (the TOTP step, or the recovery code), atomically: false when a
       * concurrent request spent it first, which then counts as a replay.
       */
      consume(tx: SqlClient): Promise<boolean>;
    }
  | { readonly ok: false; readonly reason: SecondFactorFailure };

/** For users without a TOTP secret (unknown, not enrolled): the same work, never a match. */
let dummySecret: SecretBytes | undefined;

/**
 * Checks a second factor without spending it, doing the same work whether or not the user
 * exists or has enrolled (issue 5, "Bad input"), so the answer and its timing do not say which.
 */
export class SecondFactors {
  constructor(
    private readonly db: SqlClient,
    private readonly credentials: CredentialKeys,
    private readonly clock: Clock,
  ) {}

  async check(
    user: AdminUserRow | undefined,
    input: SecondFactorInput,
  ): Promise<SecondFactorCheck> {
    const now = this.clock.now();
    if (input.recoveryCode !== undefined) return this.checkRecovery(user, input.recoveryCode, now);
    if (input.code === undefined) return { ok: false, reason: "code_missing" };
    const sealed = user?.totp_secret ?? null;
    dummySecret ??= generateTotpSecret();
    const secret =
      user !== undefined && sealed !== null
        ? await this.credentials.openTotp(user.id, sealed)
        : dummySecret;
    try {
      const result = verifyTotp(secret, input.code, {
        now,
        lastUsedStep: user?.totp_last_step ?? null,
      });
      if (!result.ok) {
        const reason =
          result.reason === "MALFORMED"
            ? "code_malformed"
            : result.reason === "REPLAYED"
              ? "code_replayed"
              : "code_invalid";
        return { ok: false, reason };
      }
      if (user === undefined || sealed === null) return { ok: false, reason: "code_invalid" };
      const userId = user.id;
      return {
        ok: true,
        method: "totp",
        consume: (tx) => consumeTotpStep(tx, userId, result.step),
      };
    } finally {
      if (secret !== dummySecret) secret.zeroize();
    }
  }

  private async checkRecovery(
    user: AdminUserRow | undefined,
    typed: string,
    now: Date,
  ): Promise<SecondFactorCheck> {
    const userId = user?.id ?? "usr_none";
    const stored = await listRecoveryCodes(this.db, userId);
    const result = verifyRecoveryCode(await this.credentials.recoveryKey(), userId, typed, stored);
    if (!result.ok) {
      const reason =
        result.reason === "MALFORMED"
          ? "recovery_code_malformed"
          : result.reason === "USED"
            ? "recovery_code_used"
            : "recovery_code_invalid";
      return { ok: false, reason };
    }
    return {
      ok: true,
      method: "recovery_code",
      consume: (tx) => consumeRecoveryCode(tx, userId, result.hash, now),
    };
  }
}
