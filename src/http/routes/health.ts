import type { FastifyInstance } from "fastify";
import { VaultError } from "../../errors/registry.js";
import type { HttpDeps } from "../context.js";

const statusSchema = {
  type: "object",
  additionalProperties: false,
  properties: { status: { type: "string" }, store: { type: "string" }, kek: { type: "string" } },
} as const;

/** GET /healthz — the process is up. GET /readyz — the store answers and the KEK can be used. */
export function registerHealth(app: FastifyInstance, deps: HttpDeps): void {
  app.get("/healthz", { schema: { response: { 200: statusSchema } } }, async () => ({
    status: "ok",
  }));
  app.get("/readyz", { schema: { response: { 200: statusSchema } } }, async () => {
    if (deps.sealStatus().sealed) throw new VaultError("VAULT_SEALED");
    try {
      await deps.db.query("SELECT 1");
      await deps.keyManager.checkHealth();
    } catch (err) {
      throw new VaultError("NOT_READY", { cause: err });
    }
    return { status: "ready", store: deps.db.kind, kek: deps.keyManager.kind };
  });
}
