import type { Environment } from "../../keys/key-manager.js";

/** Field error codes of capture sessions and registered keys (docs/errors.md lists them). */
export const CAPTURE_ISSUE_CODES = ["ORIGIN_INVALID", "JWK_INVALID"] as const;

/**
 * A verified capture session: what a merchant backend asked for with `POST /v1/capture/sessions`
 * and the vault signed (a JWS with iss, aud, sub = tenant, jti, iat, exp ≤ 15 minutes).
 */
export interface CaptureSession {
  /** The session token's `jti`; the frame puts it in its JWE's `iss` claim. */
  readonly id: string;
  readonly tenantId: string;
  readonly environment: Environment;
  /** Origins allowed to embed the frame and to receive its postMessage (scheme://host[:port]). */
  readonly origins: readonly string[];
  readonly expiresAt: Date;
}

/** Verifies a capture session token; throws `CaptureSessionError` when it is not valid. */
export interface CaptureSessionVerifier {
  verify(token: string): Promise<CaptureSession>;
}

/** One error for every invalid session (bad signature, expired, wrong audience, unknown key). */
export class CaptureSessionError extends Error {
  readonly code = "CAPTURE_SESSION_INVALID";
  constructor() {
    super("the capture session is invalid or has expired");
    this.name = "CaptureSessionError";
  }
}
