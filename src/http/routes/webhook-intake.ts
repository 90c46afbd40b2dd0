import type { FastifyInstance } from "fastify";
import { VaultError } from "../../errors/registry.js";
import { WebhookRejected } from "../../services/webhooks/webhook-service.js";
import { WEBHOOK_PROVIDERS } from "../../store/webhook-endpoints-repo.js";
import type { HttpDeps } from "../context.js";

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;
const PROVIDERS: ReadonlySet<string> = new Set(WEBHOOK_PROVIDERS);

/**
 * POST /v1/webhooks/{provider}/{endpoint_id}: a provider's signed event (issue 6). The body is
 * kept as the raw bytes that came off the wire: signatures cover bytes, and verifying a parsed
 * and re-serialized body is the classic webhook bug. This route has its own content-type parser
 * (in an encapsulated scope, so the API's JSON parser never runs here) and its own body limit.
 *
 * Every refusal is a 4xx with a stable code, counted in `payvault_webhook_intake_total` by
 * provider and code, and logged with the endpoint id and reason, never the body or a header
 * value. An accepted event is acknowledged with 200 once it is durably queued; a replay of an
 * event already received is acknowledged too, with `duplicate: true`, and not queued again.
 */
export function registerWebhookIntake(app: FastifyInstance, deps: HttpDeps): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      "application/json",
      { parseAs: "buffer", bodyLimit: deps.webhooks.maxBodyBytes },
      (request, body, done) => {
        const charset = CHARSET.exec(request.headers["content-type"] ?? "")?.[1]?.toLowerCase();
        if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
          done(new VaultError("UNSUPPORTED_MEDIA_TYPE"), undefined);
          return;
        }
        done(null, body);
      },
    );
    scope.addContentTypeParser("*", (_request, _payload, done) => {
      done(new VaultError("UNSUPPORTED_MEDIA_TYPE"), undefined);
    });
    scope.addHook("onError", async (request, _reply, error) => {
      // Refusals raised before the handler (size, media type) are counted like the others.
      if (request.routeOptions.url !== "/v1/webhooks/:provider/:endpoint_id") return;
      const code = error instanceof VaultError ? error.code : codeOfFrameworkError(error);
      const reason = error instanceof WebhookRejected ? error.reason : undefined;
      countRefusal(deps, request.params, code, reason, request.log);
    });

    scope.post(
      "/v1/webhooks/:provider/:endpoint_id",
      {
        bodyLimit: deps.webhooks.maxBodyBytes,
        schema: {
          params: {
            type: "object",
            additionalProperties: false,
            required: ["provider", "endpoint_id"],
            properties: {
              provider: { type: "string", maxLength: 20 },
              endpoint_id: { type: "string", maxLength: 100 },
            },
          },
        },
      },
      async (request, reply) => {
        const { provider, endpoint_id: endpointId } = request.params as {
          provider: string;
          endpoint_id: string;
        };
        if (!PROVIDERS.has(provider)) throw new WebhookRejected("WEBHOOK_ENDPOINT_NOT_FOUND");
        const body = request.body;
        if (!Buffer.isBuffer(body) || body.length === 0) {
          throw new WebhookRejected("WEBHOOK_BODY_INVALID");
        }
        const result = await deps.webhooks.receive(provider, endpointId, body, request.headers);
        deps.metrics.webhookIntake.inc({
          provider,
          outcome: result.duplicate ? "duplicate" : "queued",
        });
        return reply.code(200).send({
          received: true,
          duplicate: result.duplicate,
          ...(result.id === undefined ? {} : { id: result.id }),
        });
      },
    );
  });
}

function codeOfFrameworkError(error: Error & { code?: string; statusCode?: number }): string {
  if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") return "PAYLOAD_TOO_LARGE";
  if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") return "UNSUPPORTED_MEDIA_TYPE";
  if (error.code === "FST_ERR_CTP_EMPTY_JSON_BODY") return "WEBHOOK_BODY_INVALID";
  return error.statusCode !== undefined && error.statusCode < 500
    ? "INVALID_REQUEST"
    : "INTERNAL_ERROR";
}

function countRefusal(
  deps: HttpDeps,
  params: unknown,
  code: string,
  reason: string | undefined,
  log: { warn: (obj: object, msg: string) => void },
): void {
  const { provider, endpoint_id: endpointId } = (params ?? {}) as {
    provider?: string;
    endpoint_id?: string;
  };
  const known = provider !== undefined && PROVIDERS.has(provider) ? provider : "unknown";
  deps.metrics.webhookIntake.inc({ provider: known, outcome: code });
  // The endpoint id is logged only when it has the vault's id form (never arbitrary URL text).
  const endpoint =
    endpointId !== undefined && /^whe_[A-Za-z0-9]{1,64}$/.test(endpointId) ? endpointId : undefined;
  log.warn({ provider: known, endpoint, code, reason }, "webhook refused");
}
