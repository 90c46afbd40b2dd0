import type { FastifyInstance, FastifyRequest } from "fastify";
import { VaultError } from "../../errors/registry.js";
import type { RekeyStatus } from "../../keys/local-key-manager.js";
import { UnsealError } from "../../keys/seal.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

const sealStatusSchema = {
  type: "object",
  additionalProperties: false,
  required: ["sealed", "threshold", "shares", "progress"],
  properties: {
    sealed: { type: "boolean" },
    threshold: { type: "integer" },
    shares: { type: "integer" },
    progress: { type: "integer" },
  },
} as const;

const unsealBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["share"],
  properties: { share: { type: "string", minLength: 1, maxLength: 512 } },
} as const;

/** A staged custodian rekey; `confirmed` and `cancelled` only on the answers that did so. */
const rekeyStatusSchema = {
  type: "object",
  additionalProperties: false,
  required: ["pending", "share_set", "threshold", "shares", "progress", "staged_at", "ceremony_id"],
  properties: {
    pending: { type: "boolean" },
    share_set: { type: ["string", "null"] },
    threshold: { type: "integer" },
    shares: { type: "integer" },
    progress: { type: "integer" },
    staged_at: { type: ["string", "null"] },
    ceremony_id: { type: ["string", "null"] },
    confirmed: { type: "boolean" },
    cancelled: { type: "string" },
  },
} as const;

const ceremonyBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["action"],
  properties: {
    action: { type: "string", maxLength: 40 },
    params: { type: "object", maxProperties: 10 },
  },
} as const;

const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^cer_[0-9A-Za-z]{1,64}$" } },
} as const;

/** Paths a sealed vault still serves: liveness, readiness (503) and the unseal itself. */
export const SEALED_ALLOWED = new Set([
  "/healthz",
  "/readyz",
  "/v1/sys/seal-status",
  "/v1/sys/unseal",
]);

/**
 * The vault's own administration: seal status and unseal (shares are their own credential, as
 * in Vault's unseal API), the key inventory (PCI DSS 3.6.1.1), dual-control key ceremonies
 * (3.6.1.2, 3.7.6) and the confirmation of a staged custodian rekey. Everything but the seal
 * routes needs `sys:admin`.
 */
export function registerSys(app: FastifyInstance, deps: HttpDeps): void {
  app.get("/v1/sys/seal-status", { schema: { response: { 200: sealStatusSchema } } }, async () =>
    deps.sealStatus(),
  );

  app.post(
    "/v1/sys/unseal",
    { schema: { body: unsealBodySchema, response: { 200: sealStatusSchema } }, bodyLimit: 2048 },
    async (request) => {
      try {
        return await deps.submitUnsealShare((request.body as { share: string }).share);
      } catch (err) {
        // A sealed vault has no audit key yet: refused shares go to the log (never the share).
        if (err instanceof UnsealError) {
          request.log.warn({ code: err.code, ip: request.ip }, "unseal share refused");
        }
        throw err;
      }
    },
  );

  // Custodian change, after an approved custodians.rekey (PCI DSS 3.6.1.2, 3.7.6): the new set
  // replaces the old one only once a threshold of its shares comes back here, one per custodian.
  app.get("/v1/sys/rekey", { schema: { response: { 200: rekeyStatusSchema } } }, async () =>
    rekeyView(await deps.ceremonies.rekeyStatus()),
  );

  app.post(
    "/v1/sys/rekey/verify",
    {
      schema: { body: unsealBodySchema, response: { 200: rekeyStatusSchema } },
      bodyLimit: 2048,
    },
    async (request) => {
      const result = await deps.ceremonies.verifyRekeyShare(
        (request.body as { share: string }).share,
        principalOf(request).keyId,
      );
      return { ...rekeyView(result), confirmed: result.confirmed };
    },
  );

  app.post(
    "/v1/sys/rekey/cancel",
    { schema: { response: { 200: rekeyStatusSchema } } },
    async (request) => {
      const { cancelled, status } = await deps.ceremonies.cancelRekey(principalOf(request).keyId);
      return { ...rekeyView(status), cancelled };
    },
  );

  app.get("/v1/sys/keys", {}, async () => {
    const inventory = await deps.lifecycle.inventory();
    return {
      keks: inventory.keks.map((kek) => ({
        kind: kek.kind,
        environment: kek.environment,
        kek_id: kek.kekId,
        current_version: kek.currentVersion,
        versions: kek.versions.map((v) => ({
          version: v.version,
          created_at: v.createdAt?.toISOString() ?? null,
        })),
        algorithm: kek.algorithm,
        strength_bits: kek.strengthBits,
        location: kek.location,
      })),
      keys: inventory.keys,
    };
  });

  app.get("/v1/sys/ceremonies", {}, async () => ({
    data: (await deps.ceremonies.list()).map(ceremonyView),
  }));

  app.post(
    "/v1/sys/ceremonies",
    { schema: { body: ceremonyBodySchema } },
    async (request, reply) => {
      const body = request.body as { action: string; params?: Record<string, unknown> };
      const row = await deps.ceremonies.propose(
        body.action,
        body.params ?? {},
        principalOf(request).keyId,
      );
      return reply.code(201).send(ceremonyView(row));
    },
  );

  app.post("/v1/sys/ceremonies/:id/approve", { schema: { params: idParams } }, async (request) => {
    const { id } = request.params as { id: string };
    const outcome = await deps.ceremonies.approve(id, principalOf(request).keyId);
    return { ...ceremonyView(outcome.ceremony), result: outcome.result };
  });

  app.post("/v1/sys/ceremonies/:id/reject", { schema: { params: idParams } }, async (request) => {
    const { id } = request.params as { id: string };
    return ceremonyView(await deps.ceremonies.reject(id, principalOf(request).keyId));
  });
}

/** A sealed vault answers 503 VAULT_SEALED on every route but the seal routes. */
export function sealedGuard(deps: HttpDeps) {
  return async (request: FastifyRequest): Promise<void> => {
    const url = request.routeOptions.url;
    if (url !== undefined && SEALED_ALLOWED.has(url)) return;
    if (deps.sealStatus().sealed) throw new VaultError("VAULT_SEALED");
  };
}

function rekeyView(status: RekeyStatus) {
  return {
    pending: status.pending,
    share_set: status.setId ?? null,
    threshold: status.threshold,
    shares: status.shares,
    progress: status.progress,
    staged_at: status.stagedAt ?? null,
    ceremony_id: status.ceremonyId ?? null,
  };
}

function ceremonyView(row: Awaited<ReturnType<HttpDeps["ceremonies"]["get"]>>) {
  return {
    id: row.id,
    action: row.action,
    params: row.params,
    state: row.state,
    proposed_by: row.proposed_by,
    proposed_at: row.proposed_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    decided_by: row.decided_by,
    decided_at: row.decided_at?.toISOString() ?? null,
  };
}
