import type { TLSSocket } from "node:tls";
import type { FastifyReply, FastifyRequest } from "fastify";
import { grants } from "../domain/scopes.js";
import type { ErrorCode } from "../errors/registry.js";
import { VaultError } from "../errors/registry.js";
import type { AuthFailureReason, AuthResult, PresentationContext } from "../services/principal.js";
import type { HttpDeps } from "./context.js";

// RFC 6750 §2.1 / RFC 9110 §11.1: the auth scheme name is case-insensitive.
const BEARER = /^bearer ([\x21-\x7e]{1,4096})$/i;
const API_KEY_PREFIX = /^pv_(live|test)_/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

const FAILURE_CODES: Readonly<Record<AuthFailureReason, ErrorCode>> = {
  invalid: "AUTH_INVALID",
  revoked: "AUTH_REVOKED",
  expired: "AUTH_EXPIRED",
  session_expired: "SESSION_EXPIRED",
  ip_not_allowed: "CLIENT_IP_NOT_ALLOWED",
  cert_required: "CLIENT_CERT_REQUIRED",
};

/**
 * The SHA-256 fingerprint (lowercase hex of the DER) of the client certificate, when the TLS
 * handshake verified one against the configured client CA (mutual TLS, RFC 8446 §4.4.2);
 * undefined without mTLS or when the certificate did not verify.
 */
export function clientCertSha256(request: FastifyRequest): string | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== "function")
    return undefined;
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  return typeof fingerprint === "string" && fingerprint !== ""
    ? fingerprint.replaceAll(":", "").toLowerCase()
    : undefined;
}

/** Finds whose credential was presented: an API key or an admin user's access token. */
async function authenticate(
  deps: HttpDeps,
  credential: string,
  context: PresentationContext,
): Promise<AuthResult> {
  if (API_KEY_PREFIX.test(credential)) return deps.apiKeys.authenticate(credential, context);
  if (JWT_SHAPE.test(credential) && deps.adminAuth !== undefined)
    return deps.adminAuth.authenticateAccessToken(credential, context);
  return { ok: false, reason: "invalid", keyId: undefined };
}

/**
 * Authorizes every request against its route's entry in the route table (route-table.ts) before
 * the body is read (PCI DSS 7.2.1, 7.2.2, 8.2): public routes pass; the others need
 * `Authorization: Bearer <API key or access token>` holding the route's scope (`user` routes: an
 * admin user's access token, never an API key), and routes marked
 * `stepUp` need an admin user's second factor to be fresh (PCI DSS 8.4.1). Repeated failures from
 * an address or against a credential back off exponentially (authThrottle). Every failure and
 * denial is in the audit trail with the client address and outcome (PCI DSS 10.2.1.4, 10.2.2);
 * the response says only which kind of failure it was, never whether an unknown key id exists.
 */
export function authHook(deps: HttpDeps) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const spec = request.routeOptions.config.route;
    if (spec === undefined || spec.access === "public") return;
    const header = request.headers.authorization;
    const match = header === undefined ? null : BEARER.exec(header);
    const credential = match?.[1];
    // The throttle's per-credential key: an API key's id part, else nothing (per address only).
    const credentialKey = credential?.startsWith("pv_")
      ? credential.slice(0, credential.lastIndexOf("_"))
      : undefined;
    // Failures back off per address and per key id (429 AUTH_BACKOFF once blocked). A valid
    // credential is never held back by others' failures: API-key secrets and access tokens cannot
    // be guessed, and blocking before verifying would let anyone who shares an address (NAT) or
    // knows a key id (it is not secret) lock a merchant's checkout out. Passwords are another
    // matter: the login blocks before verifying (routes/auth.ts).
    const refuse = async (code: ErrorCode, keyId: string | undefined, tenantId?: string) => {
      try {
        await deps.authThrottle?.failed(request, credentialKey);
      } catch (err) {
        if (err instanceof VaultError && err.code === "AUTH_BACKOFF")
          await deny(deps, request, "AUTH_BACKOFF", keyId, tenantId, err.headers);
        throw err;
      }
      await deny(deps, request, code, keyId, tenantId);
    };
    if (credential === undefined) {
      await refuse(header === undefined ? "AUTH_MISSING" : "AUTH_INVALID", undefined);
      return;
    }
    const result = await authenticate(deps, credential, {
      ip: request.ip,
      clientCertSha256: clientCertSha256(request),
    });
    if (!result.ok) {
      await refuse(FAILURE_CODES[result.reason], result.keyId, result.tenantId);
      return;
    }
    const principal = result.principal;
    const allowed =
      spec.access === "user" ? principal.kind === "user" : grants(principal.scopes, spec.access);
    if (!allowed) {
      await deny(deps, request, "INSUFFICIENT_SCOPE", principal.keyId, principal.tenantId);
      return;
    }
    if (
      spec.stepUp === true &&
      principal.kind === "user" &&
      deps.adminAuth?.needsStepUp(principal) !== false
    ) {
      await deny(deps, request, "MFA_STEP_UP_REQUIRED", principal.keyId, principal.tenantId);
      return;
    }
    request.principal = principal;
  };
}

async function deny(
  deps: HttpDeps,
  request: FastifyRequest,
  code: ErrorCode,
  keyId: string | undefined,
  tenantId?: string,
  headers?: Readonly<Record<string, string>>,
): Promise<never> {
  const denied = code === "INSUFFICIENT_SCOPE" || code === "MFA_STEP_UP_REQUIRED";
  try {
    await deps.audit.record(deps.db, {
      tenantId,
      actor: keyId ?? "anonymous",
      action: "auth.failure",
      objectId: undefined,
      outcome: denied ? "denied" : "failure",
      details: { reason: code, ip: request.ip, route: request.routeOptions.url ?? "" },
    });
  } catch (err) {
    // The denial stands either way; the failure to audit it is itself logged.
    request.log.error(
      { err_code: (err as VaultError).code, request_id: request.id },
      "could not audit an authentication failure",
    );
  }
  throw new VaultError(code, headers === undefined ? {} : { headers });
}
