import type { FastifyInstance, FastifyReply } from "fastify";
import Fastify, { LogController } from "fastify";
import { newId } from "../crypto/random.js";
import { VaultError } from "../errors/registry.js";
import type { Logger } from "../log/logger.js";
import { parseJsonBody } from "./json-body-parser.js";
import { PROBLEM_CONTENT_TYPE, problemOf } from "./problem.js";
import { SECURITY_HEADERS } from "./security-headers.js";
import type { TlsMaterial } from "./tls.js";
import { clientAuthServerOptions, TLS_SERVER_OPTIONS } from "./tls.js";

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)/i;

/**
 * The HTTP stack every payvault listener shares (the vault, and the benchmark's baselines, which
 * must cost exactly the same below the vault's logic): Fastify with TLS options, request ids,
 * keep-alive, the JSON body parser, and one log line per request written by `onResponse`.
 */
export function createHttpStack(
  logger: Logger,
  tls: TlsMaterial | undefined,
  trustedProxies: readonly string[] = [],
): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger,
    // Fastify's own per-request lines are off: the onResponse hook writes one line per request.
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: "request_id",
    }),
    genReqId: () => newId("req"),
    requestIdHeader: false,
    // A URL the router cannot decode: a problem document like every other refusal (and through
    // the app's onSend hook, with its security headers).
    frameworkErrors: (_error, request, reply) => {
      (reply as FastifyReply)
        .code(400)
        .headers(SECURITY_HEADERS)
        .header("x-request-id", request.id)
        .header("content-type", PROBLEM_CONTENT_TYPE)
        .send(problemOf("INVALID_REQUEST", request.id));
    },
    // X-Forwarded-For is believed only from the configured proxies (PAYVAULT_TRUSTED_PROXIES);
    // from anyone else it would let a client choose its address for rate limits and key ranges.
    ...(trustedProxies.length === 0 ? {} : { trustProxy: [...trustedProxies] }),
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    keepAliveTimeout: 65_000,
    ...(tls === undefined
      ? {}
      : {
          https: {
            key: tls.key,
            cert: tls.cert,
            ...TLS_SERVER_OPTIONS,
            ...clientAuthServerOptions(tls.clientAuth),
          },
        }),
  }) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    try {
      // JSON is UTF-8 (RFC 8259 §8.1): any other declared charset is refused, not misread.
      const charset = CHARSET.exec(request.headers["content-type"] ?? "")?.[1]?.toLowerCase();
      if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
        throw new VaultError("UNSUPPORTED_MEDIA_TYPE");
      }
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as VaultError, undefined);
    }
  });
  app.addHook("onResponse", async (request, reply) => {
    // Never a body, never the URL (routes are logged as their pattern).
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? "(unmatched)",
        status: reply.statusCode,
        duration_ms: Math.round(reply.elapsedTime * 100) / 100,
        tenant: request.principal?.tenantId,
        key_id: request.principal?.keyId,
      },
      "request",
    );
  });
  return app;
}
