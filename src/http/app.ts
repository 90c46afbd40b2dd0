import type { FastifyInstance } from "fastify";
import { authHook } from "./auth.js";
import type { HttpDeps } from "./context.js";
import { errorHandler } from "./error-handler.js";
import { createHttpStack } from "./http-stack.js";
import { PROBLEM_CONTENT_TYPE, problemOf } from "./problem.js";
import { registerCapture } from "./routes/capture.js";
import { registerCaptureFrame } from "./routes/capture-frame.js";
import { registerHealth } from "./routes/health.js";
import { registerSys, sealedGuard } from "./routes/sys.js";
import { registerTenantJoseKeys } from "./routes/tenant-jose-keys.js";
import { registerTokensBatch } from "./routes/tokens-batch.js";
import { registerTokensCreate } from "./routes/tokens-create.js";
import { registerTokensDelete } from "./routes/tokens-delete.js";
import { registerTokensGet } from "./routes/tokens-get.js";
import { registerTokensReveal } from "./routes/tokens-reveal.js";
import type { TlsMaterial } from "./tls.js";
import { compileSchema } from "./validation.js";

export interface AppOptions {
  /** TLS certificate and key; absent only for plain HTTP behind a TLS-terminating proxy (and tests). */
  readonly tls: TlsMaterial | undefined;
}

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
  const app = createHttpStack(deps.logger, options.tls);
  app.setValidatorCompiler(({ schema }) => compileSchema(schema));
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (options.tls !== undefined)
      reply.header("strict-transport-security", "max-age=63072000; includeSubDomains");
    reply.header("x-request-id", request.id);
  });
  app.addHook("onRequest", sealedGuard(deps));
  app.addHook("onRequest", authHook(deps));
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
  registerSys(app, deps);
  registerCapture(app, deps);
  registerCaptureFrame(app, {
    sessions: deps.captureSessions,
    publicOrigin: () => deps.origin.get(),
    logger: deps.logger,
  });
  registerTenantJoseKeys(app, deps);
  return app;
}
