import type { FastifyInstance } from "fastify";
import { ROLE_NAMES } from "../../domain/scopes.js";
import type { AdminAuth } from "../../services/admin-users/admin-auth.js";
import type { AdminActor, AdminUserView } from "../../services/admin-users/admin-users.js";
import type { Principal } from "../../services/principal.js";
import type { AuthThrottle } from "../context.js";
import { httpGrantable, principalOf } from "../context.js";

const createBody = {
  type: "object",
  additionalProperties: false,
  required: ["username", "roles"],
  properties: {
    username: { type: "string", minLength: 1, maxLength: 256 },
    roles: {
      type: "array",
      minItems: 1,
      maxItems: ROLE_NAMES.length,
      uniqueItems: true,
      items: { type: "string", enum: ROLE_NAMES },
    },
  },
} as const;

const userView = {
  type: "object",
  additionalProperties: false,
  required: [
    "id",
    "username",
    "roles",
    "scopes",
    "status",
    "created_at",
    "created_by",
    "enrolled_at",
    "locked_until",
    "disabled_at",
  ],
  properties: {
    id: { type: "string" },
    username: { type: "string" },
    roles: { type: "array", items: { type: "string" } },
    scopes: { type: "array", items: { type: "string" } },
    status: { type: "string" },
    created_at: { type: "string" },
    created_by: { type: "string" },
    enrolled_at: { type: ["string", "null"] },
    locked_until: { type: ["string", "null"] },
    disabled_at: { type: ["string", "null"] },
  },
} as const;

const createdView = {
  ...userView,
  required: [...userView.required, "enrollment_token", "enrollment_expires_at"],
  properties: {
    ...userView.properties,
    enrollment_token: { type: "string" },
    enrollment_expires_at: { type: "string" },
  },
} as const;

const idParams = {
  type: "object",
  additionalProperties: false,
  required: ["id"],
  properties: { id: { type: "string", pattern: "^usr_[0-9A-Za-z]{1,64}$" } },
} as const;

function view(user: AdminUserView) {
  return {
    id: user.id,
    username: user.username,
    roles: [...user.roles],
    scopes: [...user.scopes],
    status: user.status,
    created_at: user.createdAt.toISOString(),
    created_by: user.createdBy,
    enrolled_at: user.enrolledAt?.toISOString() ?? null,
    locked_until: user.lockedUntil?.toISOString() ?? null,
    disabled_at: user.disabledAt?.toISOString() ?? null,
  };
}

/**
 * What the caller may hand on: its own scopes, but never `sys:admin` over HTTP. Operators are
 * made with the CLI by an OS account, so one credential cannot mint the second principal of a
 * dual-control key ceremony (PCI DSS 3.6.1.2, 3.7.6).
 */
function actorOf(principal: Principal, ip: string): AdminActor {
  return { actor: principal.keyId, ip, grantable: httpGrantable(principal) };
}

/**
 * A tenant administrator's admin users (`tenant:admin`): create one (the answer holds the
 * one-time enrollment token), list, disable (every session ends at once), unlock. Users are the
 * caller's tenant's; another tenant's is a 404.
 */
export function registerAdminUsers(
  app: FastifyInstance,
  deps: { readonly adminAuth: AdminAuth; readonly authThrottle?: AuthThrottle | undefined },
): void {
  const users = deps.adminAuth.users;

  app.post(
    "/v1/admin-users",
    { bodyLimit: 4 * 1024, schema: { body: createBody, response: { 201: createdView } } },
    async (request, reply) => {
      const principal = principalOf(request);
      const input = request.body as { username: string; roles: string[] };
      const created = await users.create(actorOf(principal, request.ip), {
        tenantId: principal.tenantId,
        username: input.username,
        roles: input.roles,
      });
      reply.code(201);
      return {
        ...view(created.user),
        enrollment_token: created.enrollmentToken,
        enrollment_expires_at: created.enrollmentExpiresAt.toISOString(),
      };
    },
  );

  app.get(
    "/v1/admin-users",
    {
      schema: {
        response: {
          200: {
            type: "object",
            additionalProperties: false,
            required: ["users"],
            properties: { users: { type: "array", items: userView } },
          },
        },
      },
    },
    async (request) => ({
      users: (await users.list(principalOf(request).tenantId)).map(view),
    }),
  );

  app.delete("/v1/admin-users/:id", { schema: { params: idParams } }, async (request, reply) => {
    const principal = principalOf(request);
    const { id } = request.params as { id: string };
    await users.disable(actorOf(principal, request.ip), principal.tenantId, id);
    reply.code(204);
  });

  app.post(
    "/v1/admin-users/:id/unlock",
    { bodyLimit: 1024, schema: { params: idParams } },
    async (request, reply) => {
      const principal = principalOf(request);
      const { id } = request.params as { id: string };
      const username = await users.unlock(actorOf(principal, request.ip), principal.tenantId, id);
      // The login's per-username backoff goes with the lockout (the address's stays).
      await deps.authThrottle?.succeeded(request, `user:${username}`);
      reply.code(204);
    },
  );
}
