import type { FastifyInstance } from "fastify";
import Fastify, { LogController } from "fastify";
import { newId } from "../crypto/random.js";
import { VaultError } from "../errors/registry.js";
import { authHook } from "./auth.js";
import type { HttpDeps } from "./context.js";
import { errorHandler } from "./error-handler.js";
import { parseJsonBody } from "./json-body-parser.js";
import { PROBLEM_CONTENT_TYPE, problemOf } from "./problem.js";
import { registerHealth } from "./routes/health.js";
import { registerTokensBatch } from "./routes/tokens-batch.js";
import { registerTokensCreate } from "./routes/tokens-create.js";
import { registerTokensDelete } from "./routes/tokens-delete.js";
import { registerTokensGet } from "./routes/tokens-get.js";
import { registerTokensReveal } from "./routes/tokens-reveal.js";
import type { TlsMaterial } from "./tls.js";
import { TLS_SERVER_OPTIONS } from "./tls.js";
import { compileSchema } from "./validation.js";

export interface AppOptions {
  /** TLS certificate and key; absent only for plain HTTP behind a TLS-terminating proxy (and tests). */
  readonly tls: TlsMaterial | undefined;
}

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)/i;

/** Security headers on every response (OWASP secure headers; PCI DSS 6.4). */
const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
} as const;

/** The composition of the HTTP layer: parsers, hooks, error handling, and one route per file. */
export function buildApp(deps: HttpDeps, options: AppOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger,
    // Fastify's own per-request lines are off: onResponse below writes one line per request.
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: "request_id",
    }),
    genReqId: () => newId("req"),
    requestIdHeader: false,
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    keepAliveTimeout: 65_000,
    ...(options.tls === undefined
      ? {}
      : { https: { key: options.tls.key, cert: options.tls.cert, ...TLS_SERVER_OPTIONS } }),
  }) as unknown as FastifyInstance;

  app.setValidatorCompiler(({ schema }) => compileSchema(schema));
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
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (options.tls !== undefined)
      reply.header("strict-transport-security", "max-age=63072000; includeSubDomains");
    reply.header("x-request-id", request.id);
  });
  app.addHook("onRequest", authHook(deps));
  app.addHook("onResponse", async (request, reply) => {
    // One line per request; never a body, never the URL (routes are logged as their pattern).
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
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .header("content-type", PROBLEM_CONTENT_TYPE)
      .send(problemOf("ROUTE_NOT_FOUND", request.id)),
  );

  registerHealth(app, deps);
  registerTokensCreate(app, deps);
  registerTokensBatch(app, deps);
  registerTokensGet(app, deps);
  registerTokensReveal(app, deps);
  registerTokensDelete(app, deps);
  return app;
}
