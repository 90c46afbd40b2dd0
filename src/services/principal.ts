import type { Scope } from "../domain/scopes.js";
import type { Environment } from "../keys/key-manager.js";

/**
 * An authenticated caller: a machine (API key) or a person (an admin user's access token).
 * `keyId` is the actor recorded in the audit trail: the API key's id (`key_…`) or the user's id
 * (`usr_…`).
 */
export interface Principal {
  readonly kind: "api_key" | "user" | "capture_session";
  readonly tenantId: string;
  readonly keyId: string;
  readonly environment: Environment;
  readonly scopes: ReadonlySet<Scope>;
  /** Users only: the session (refresh-token family) the access token belongs to. */
  readonly sessionId?: string;
  /** Users only: when the session last proved a second factor (login or step-up). */
  readonly mfaAt?: Date;
}

/** Where a credential was presented from: checked against a key's bindings. */
export interface PresentationContext {
  readonly ip: string;
  /** SHA-256 of the verified client certificate (DER, lowercase hex), when mTLS presented one. */
  readonly clientCertSha256: string | undefined;
}

export type AuthFailureReason =
  | "invalid"
  | "revoked"
  | "expired"
  | "session_expired"
  | "ip_not_allowed"
  | "cert_required";

export type AuthResult =
  | { readonly ok: true; readonly principal: Principal }
  | {
      readonly ok: false;
      readonly reason: AuthFailureReason;
      /** The credential's id when it names a real one (audit); never attacker-chosen text. */
      readonly keyId: string | undefined;
      readonly tenantId?: string;
    };
