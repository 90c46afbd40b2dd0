import type { FastifyInstance } from "fastify";
import { parseCidr } from "../../domain/cidr.js";
import type { Role, Scope } from "../../domain/scopes.js";
import { expandScopes, grants, isSystemScope, ROLE_NAMES, SCOPES } from "../../domain/scopes.js";
import type { FieldError } from "../../errors/registry.js";
import { VaultError } from "../../errors/registry.js";
import type { Environment } from "../../keys/key-manager.js";
import type { ApiKeyView } from "../../services/api-keys.js";
import { MAX_ROTATION_OVERLAP_SECONDS } from "../../services/api-keys.js";
import type { Principal } from "../../services/principal.js";
import type { HttpDeps } from "../context.js";
import { httpGrantable, principalOf } from "../context.js";

/** Field error codes of the API-key routes (docs/errors.md). */
export const API_KEY_ISSUE_CODES = [
  "SCOPES_REQUIRED",
  "EXPIRES_AT_INVALID",
  "INVALID_CIDR",
] as const;

/**
 * A rotation's default overlap: none, so rotating a leaked key ends it at once. A planned
 * rotation asks for the overlap its deployments need (`overlap_seconds`, up to 7 days).
 */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 0;

const MAX_CIDRS = 32;

const createBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["name"],
  properties: {
    name: { type: "string", maxLength: 100 },
    environment: { type: "string", enum: ["live", "test"] },
    scopes: {
      type: "array",
      maxItems: SCOPES.length,
      items: { type: "string", enum: [...SCOPES] },
    },
    roles: {
      type: "array",
      maxItems: ROLE_NAMES.length,
      items: { type: "string", enum: ROLE_NAMES },
    },
    expires_at: { type: "string", format: "date-time" },
    allowed_ips: { type: "array", maxItems: MAX_CIDRS, items: { type: "string", maxLength: 49 } },
    client_cert_sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
  },
} as const;

const rotateBodySchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    overlap_seconds: { type: "integer", minimum: 0, maximum: MAX_ROTATION_OVERLAP_SECONDS },
  },
} as const;

const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^key_[0-9A-Za-z]{22}$" } },
} as const;

const keyViewProperties = {
  id: { type: "string" },
  name: { type: "string" },
  environment: { type: "string" },
  scopes: { type: "array", items: { type: "string" } },
  created_at: { type: "string" },
  created_by: { type: ["string", "null"] },
  expires_at: { type: ["string", "null"] },
  revoked_at: { type: ["string", "null"] },
  allowed_ips: { type: "array", items: { type: "string" } },
  client_cert_sha256: { type: ["string", "null"] },
  rotated_to: { type: ["string", "null"] },
  last_used_at: { type: ["string", "null"] },
  use_count: { type: "integer" },
  status: { type: "string" },
} as const;

const keyViewSchema = {
  type: "object",
  additionalProperties: false,
  properties: keyViewProperties,
} as const;

const createdSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    ...keyViewProperties,
    api_key: { type: "string" },
    previous: keyViewSchema,
  },
} as const;

/** active | expired | revoked | rotating (an old key in its overlap window). */
function statusOf(key: ApiKeyView, now: Date): string {
  if (key.revokedAt !== null) return "revoked";
  if (key.expiresAt !== null && key.expiresAt <= now) return "expired";
  return key.rotatedTo !== null ? "rotating" : "active";
}

function view(key: ApiKeyView, now: Date) {
  return {
    id: key.id,
    name: key.name,
    environment: key.environment,
    scopes: key.scopes,
    created_at: key.createdAt.toISOString(),
    created_by: key.createdBy,
    expires_at: key.expiresAt?.toISOString() ?? null,
    revoked_at: key.revokedAt?.toISOString() ?? null,
    allowed_ips: key.allowedCidrs,
    client_cert_sha256: key.clientCertSha256,
    rotated_to: key.rotatedTo,
    last_used_at: key.lastUsedAt?.toISOString() ?? null,
    use_count: key.useCount,
    status: statusOf(key, now),
  };
}

/**
 * No privilege escalation (PCI DSS 7.2.2): a caller hands out (or revokes) only scopes it holds
 * itself, and never `sys:admin` over HTTP (httpGrantable).
 */
function checkGrantable(caller: Principal, scopes: readonly Scope[]): void {
  const grantable = httpGrantable(caller);
  if (!scopes.every((scope) => grantable.has(scope))) throw new VaultError("SCOPE_NOT_GRANTABLE");
}

interface CreateBody {
  name: string;
  environment?: Environment;
  scopes?: Scope[];
  roles?: Role[];
  expires_at?: string;
  allowed_ips?: string[];
  client_cert_sha256?: string;
}

/**
 * API keys of the caller's tenant (issue 5 point 2; PCI DSS 8.2.2, 8.3.2, 8.6.3): create with
 * exactly the scopes (or roles) asked for, an optional expiry, client ranges and certificate
 * binding, the secret shown once; list and read (never the secret); rotate with an overlap in
 * which both secrets work; revoke at once. Another tenant's key is API_KEY_NOT_FOUND.
 */
export function registerApiKeys(app: FastifyInstance, deps: HttpDeps): void {
  const now = () => deps.clock.now();

  app.post(
    "/v1/api-keys",
    { bodyLimit: 8192, schema: { body: createBodySchema, response: { 201: createdSchema } } },
    async (request, reply) => {
      const caller = principalOf(request);
      const body = request.body as CreateBody;
      const errors: FieldError[] = [];
      const scopes = expandScopes(body.roles ?? [], body.scopes ?? []);
      if (scopes.length === 0)
        errors.push({
          field: "scopes",
          code: "SCOPES_REQUIRED",
          message: "Give the key at least one scope or role; keys get only what is asked for.",
        });
      const expiresAt = body.expires_at === undefined ? null : new Date(body.expires_at);
      if (expiresAt !== null && expiresAt <= now())
        errors.push({
          field: "expires_at",
          code: "EXPIRES_AT_INVALID",
          message: "The expiry must be in the future.",
        });
      const cidrs: string[] = [];
      (body.allowed_ips ?? []).forEach((text, index) => {
        const cidr = parseCidr(text);
        if (cidr === undefined)
          errors.push({
            field: `allowed_ips.${index}`,
            code: "INVALID_CIDR",
            message: "Give an IPv4 or IPv6 address or CIDR range, such as 203.0.113.0/24.",
          });
        else cidrs.push(cidr);
      });
      // A test-environment credential makes test keys only; a live one makes either.
      const environment = body.environment ?? caller.environment;
      if (caller.environment === "test" && environment === "live")
        errors.push({
          field: "environment",
          code: "INVALID_VALUE",
          message: "A test-environment credential can create test keys only.",
        });
      if (errors.length > 0) throw new VaultError("VALIDATION_FAILED", { errors });
      checkGrantable(caller, scopes);
      const created = await deps.apiKeys.create({
        tenantId: caller.tenantId,
        environment,
        name: body.name,
        scopes,
        actor: caller.keyId,
        expiresAt,
        allowedCidrs: [...new Set(cidrs)],
        clientCertSha256: body.client_cert_sha256 ?? null,
      });
      return reply.code(201).send({ ...view(created.key, now()), api_key: created.secret });
    },
  );

  app.get("/v1/api-keys", async (request) => {
    const at = now();
    const keys = await deps.apiKeys.list(principalOf(request).tenantId);
    return { data: keys.map((key) => view(key, at)) };
  });

  app.get(
    "/v1/api-keys/:id",
    { schema: { params: idParams, response: { 200: keyViewSchema } } },
    async (request) => {
      const key = await deps.apiKeys.get(
        principalOf(request).tenantId,
        (request.params as { id: string }).id,
      );
      if (key === undefined) throw new VaultError("API_KEY_NOT_FOUND");
      return view(key, now());
    },
  );

  app.post(
    "/v1/api-keys/:id/rotate",
    {
      bodyLimit: 1024,
      schema: { params: idParams, body: rotateBodySchema, response: { 201: createdSchema } },
    },
    async (request, reply) => {
      const caller = principalOf(request);
      const id = (request.params as { id: string }).id;
      const body = (request.body ?? {}) as { overlap_seconds?: number };
      const current = await deps.apiKeys.get(caller.tenantId, id);
      if (current === undefined) throw new VaultError("API_KEY_NOT_FOUND");
      // Rotating hands out a new secret with the key's scopes: the same rule as creating it.
      checkGrantable(caller, current.scopes);
      const rotated = await deps.apiKeys.rotate(
        caller.tenantId,
        id,
        body.overlap_seconds ?? DEFAULT_ROTATION_OVERLAP_SECONDS,
        caller.keyId,
      );
      if (rotated === undefined) throw new VaultError("API_KEY_NOT_FOUND");
      const at = now();
      return reply.code(201).send({
        ...view(rotated.key, at),
        api_key: rotated.secret,
        previous: view(rotated.previous, at),
      });
    },
  );

  app.delete("/v1/api-keys/:id", { schema: { params: idParams } }, async (request, reply) => {
    const caller = principalOf(request);
    const id = (request.params as { id: string }).id;
    const target = await deps.apiKeys.get(caller.tenantId, id);
    if (target === undefined) throw new VaultError("API_KEY_NOT_FOUND");
    // Revoking is the safe direction: any tenant key can be cut off at once by its tenant's
    // administrator, but a key holding a system scope only by a holder of that scope (a tenant
    // administrator cannot cut the vault's operators off).
    if (!target.scopes.every((scope) => !isSystemScope(scope) || grants(caller.scopes, scope)))
      throw new VaultError("SCOPE_NOT_GRANTABLE");
    // Revoking a revoked key again is a no-op that succeeds; another tenant's is not found.
    if (
      !(await deps.apiKeys.revoke(id, caller.keyId, caller.tenantId)) &&
      (await deps.apiKeys.get(caller.tenantId, id)) === undefined
    )
      throw new VaultError("API_KEY_NOT_FOUND");
    return reply.code(204).send();
  });
}
