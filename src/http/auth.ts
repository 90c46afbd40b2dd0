import type { FastifyReply, FastifyRequest } from "fastify";
import { grants } from "../domain/scopes.js";
import type { ErrorCode } from "../errors/registry.js";
import { VaultError } from "../errors/registry.js";
import type { HttpDeps } from "./context.js";

// RFC 9110 §11.1: the auth scheme name is case-insensitive.
const BEARER = /^bearer ([\x21-\x7e]{1,200})$/i;

/**
 * Authenticates `Authorization: Bearer <api key>` for every route that declares a scope, before
 * the body is read, and checks the scope (PCI DSS 7.2, 8.2). Every failure is recorded in the
 * audit trail with the client address (PCI DSS 10.2.1.4); the response says only which of
 * missing / invalid / revoked / insufficient it was.
 */
export function authHook(deps: HttpDeps) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined) return;
    const header = request.headers.authorization;
    const match = header === undefined ? null : BEARER.exec(header);
    if (match === null) {
      await deny(
        deps,
        request,
        header === undefined ? "AUTH_MISSING" : "AUTH_INVALID",
        undefined,
        undefined,
      );
      return;
    }
    const result = await deps.apiKeys.authenticate(match[1] as string);
    if (!result.ok) {
      await deny(
        deps,
        request,
        result.reason === "revoked" ? "AUTH_REVOKED" : "AUTH_INVALID",
        result.keyId,
        undefined,
      );
      return;
    }
    if (!grants(result.principal.scopes, scope)) {
      await deny(
        deps,
        request,
        "INSUFFICIENT_SCOPE",
        result.principal.keyId,
        result.principal.tenantId,
      );
      return;
    }
    request.principal = result.principal;
  };
}

async function deny(
  deps: HttpDeps,
  request: FastifyRequest,
  code: ErrorCode,
  keyId: string | undefined,
  tenantId: string | undefined,
): Promise<never> {
  try {
    await deps.audit.record(deps.db, {
      tenantId,
      actor: keyId ?? "anonymous",
      action: "auth.failure",
      objectId: undefined,
      outcome: code === "INSUFFICIENT_SCOPE" ? "denied" : "failure",
      details: { reason: code, ip: request.ip, route: request.routeOptions.url ?? "" },
    });
  } catch (err) {
    // The denial stands either way; the failure to audit it is itself logged.
    request.log.error(
      { err_code: (err as VaultError).code, request_id: request.id },
      "could not audit an authentication failure",
    );
  }
  throw new VaultError(code);
}
