import type { FastifyReply, FastifyRequest } from "fastify";
import { VaultError } from "../errors/registry.js";
import type { HttpDeps } from "./context.js";
import { principalOf } from "./context.js";

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * Runs a creating handler under the request's `Idempotency-Key`, if it sent one: a replay sends
 * the stored response with `Idempotent-Replayed: true`; a success is stored; any failure
 * releases the key.
 */
export async function idempotent(
  deps: HttpDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  handle: () => Promise<{ status: number; body: unknown }>,
): Promise<FastifyReply> {
  const header = request.headers["idempotency-key"];
  if (header === undefined) {
    const { status, body } = await handle();
    return reply.code(status).send(body);
  }
  if (typeof header !== "string" || !IDEMPOTENCY_KEY.test(header))
    throw new VaultError("INVALID_IDEMPOTENCY_KEY");
  const ref = await deps.idempotency.fingerprint(
    principalOf(request).tenantId,
    header,
    `${request.method} ${request.routeOptions.url}`,
    request.body,
  );
  const outcome = await deps.idempotency.begin(ref);
  if (outcome.kind === "replay") {
    return reply
      .code(outcome.status)
      .header("idempotent-replayed", "true")
      .type("application/json; charset=utf-8")
      .send(outcome.body);
  }
  let result: { status: number; body: unknown };
  try {
    result = await handle();
  } catch (err) {
    await deps.idempotency.release(ref).catch(() => undefined);
    throw err;
  }
  reply.code(result.status);
  const serialized = String(reply.serialize(result.body));
  await deps.idempotency.complete(ref, result.status, serialized);
  return reply.type("application/json; charset=utf-8").send(serialized);
}
