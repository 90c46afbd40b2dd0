import type { EphemeralStore } from "../../ephemeral/ephemeral-store.js";
import type { ReplayGuard } from "../../ephemeral/replay-guard.js";
import { VaultError } from "../../errors/registry.js";
import type { Principal } from "../api-keys.js";
import type { TokenizeResult, TokenService } from "../tokens/token-service.js";
import type { CaptureSession, CaptureSessionVerifier } from "./capture-session.js";
import { CaptureSessionError } from "./capture-session.js";

/**
 * Submissions one capture session may make, counted on every node before any decryption: a
 * person fixing typos needs a few; a session in a card-testing script or a flood of payloads
 * (each costs an ECDH and a replay-store entry) is stopped at this bound.
 */
export const MAX_CAPTURE_ATTEMPTS = 20;

/** The claims a capture frame encrypts: who (the session), for whom (the vault), when, and the card. */
export interface CaptureClaims {
  readonly jti: string;
  /** Until when (NumericDate) the jti must be remembered: its exp plus the clock skew. */
  readonly replayUntil: number;
  readonly card: Readonly<Record<string, unknown>>;
}

/**
 * Opens a capture payload: decrypts the compact JWE with the vault's capture keys under the JOSE
 * policy, and checks its claims against the session (iss = session id), the vault's origin (aud),
 * iat/exp with the clock-skew allowance, and a jti. Throws VaultError with a stable code.
 */
export type CapturePayloadOpener = (
  compact: string,
  expected: { readonly issuer: string; readonly audience: string },
) => Promise<CaptureClaims>;

/**
 * `POST /v1/capture/tokenize`: the browser's encrypted card becomes a token. The session is the
 * credential (signed by the vault for one tenant and environment, 15 minutes at most); the
 * payload is refused if it was made for another session or another vault, is stale, or was
 * seen before (a jti is used once, on every node: RFC 7519 §4.1.7). The card then goes through
 * the same validation, deduplication, encryption and audit as `POST /v1/tokens`, including the
 * CVC, which is held in the ephemeral store until authorization (PCI DSS 3.3.1.2).
 */
export class CaptureService {
  constructor(
    private readonly sessions: CaptureSessionVerifier,
    private readonly openPayload: CapturePayloadOpener,
    private readonly replay: ReplayGuard,
    private readonly counters: EphemeralStore,
    private readonly tokens: TokenService,
    private readonly vaultOrigin: () => string,
    private readonly clock: { now(): Date },
  ) {}

  async tokenize(sessionToken: string, payload: string): Promise<TokenizeResult> {
    let session: CaptureSession;
    try {
      session = await this.sessions.verify(sessionToken);
    } catch (err) {
      if (err instanceof CaptureSessionError) throw new VaultError("CAPTURE_SESSION_INVALID");
      throw err;
    }
    const lifetimeMs = Math.max(1_000, session.expiresAt.getTime() - this.clock.now().getTime());
    const attempts = await this.counters.count(`capture-attempts:${session.id}`, lifetimeMs);
    if (attempts > MAX_CAPTURE_ATTEMPTS) throw new VaultError("CAPTURE_ATTEMPTS_EXCEEDED");
    const claims = await this.openPayload(payload, {
      issuer: session.id,
      audience: this.vaultOrigin(),
    });
    if (!(await this.replay.firstUse("capture", claims.jti, new Date(claims.replayUntil * 1000)))) {
      throw new VaultError("JWT_REPLAYED");
    }
    const principal: Principal = {
      kind: "capture_session",
      tenantId: session.tenantId,
      keyId: `capture:${session.id}`,
      environment: session.environment,
      scopes: new Set(["tokens:write"]),
    };
    return this.tokens.tokenize(principal, { card: claims.card });
  }
}
