import type { FastifyInstance } from "fastify";
import { authHook } from "./auth.js";
import type { HttpDeps } from "./context.js";
import { corsHook } from "./cors.js";
import { errorHandler } from "./error-handler.js";
import { createHttpStack } from "./http-stack.js";
import { PROBLEM_CONTENT_TYPE, problemOf } from "./problem.js";
import { registerRateLimits } from "./rate-limit-hook.js";
import { routeSpec } from "./route-table.js";
import { registerAdminUsers } from "./routes/admin-users.js";
import { registerApiKeys } from "./routes/api-keys.js";
import { registerAuditEvents } from "./routes/audit-events.js";
import { registerAuth } from "./routes/auth.js";
import { registerCapture } from "./routes/capture.js";
import { registerCaptureFrame } from "./routes/capture-frame.js";
import { registerEventDestinations } from "./routes/event-destinations.js";
import { registerForward } from "./routes/forward.js";
import { registerForwardDestinations } from "./routes/forward-destinations.js";
import { registerHealth } from "./routes/health.js";
import { registerSys, sealedGuard } from "./routes/sys.js";
import { registerTenantJoseKeys } from "./routes/tenant-jose-keys.js";
import { registerTokensBatch } from "./routes/tokens-batch.js";
import { registerTokensCreate } from "./routes/tokens-create.js";
import { registerTokensDelete } from "./routes/tokens-delete.js";
import { registerTokensGet } from "./routes/tokens-get.js";
import { registerTokensReveal } from "./routes/tokens-reveal.js";
import { registerWebhookEndpoints } from "./routes/webhook-endpoints.js";
import { registerWebhookEvents } from "./routes/webhook-events.js";
import { registerWebhookIntake } from "./routes/webhook-intake.js";
import { SECURITY_HEADERS } from "./security-headers.js";
import type { TlsMaterial } from "./tls.js";
import { compileSchema } from "./validation.js";

export interface AppOptions {
  /** TLS certificate and key; absent only for plain HTTP behind a TLS-terminating proxy (and tests). */
  readonly tls: TlsMaterial | undefined;
  /** Origins granted the API cross-origin (cors.ts); absent or empty: CORS closed. */
  readonly corsOrigins?: readonly string[];
  /** Proxies whose X-Forwarded-For gives the client address (CIDR); absent: the TCP peer. */
  readonly trustedProxies?: readonly string[];
}

/** The composition of the HTTP layer: parsers, hooks, error handling, and one route per file. */
export function buildApp(deps: HttpDeps, options: AppOptions): FastifyInstance {
  const app = createHttpStack(deps.logger, options.tls, options.trustedProxies);
  app.setValidatorCompiler(({ schema }) => compileSchema(schema));
  app.decorateRequest("principal", undefined);
  // Every route's access comes from the route table; a route missing from it fails start-up, so
  // nothing is ever served without a declared authorization (PCI DSS 7.2.1).
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) {
      // Fastify answers HEAD with the GET route: it gets the GET entry, so HEAD is authorized
      // exactly like GET (never left without an entry).
      const spec = routeSpec(method === "HEAD" ? "GET" : method, route.url);
      if (spec === undefined)
        throw new Error(`route ${method} ${route.url} is not in the route table`);
      route.config = { ...(route.config ?? {}), route: spec };
    }
  });
  app.addHook("onRequest", async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    reply.header("x-request-id", request.id);
  });
  // Before the seal and auth checks: a granted preflight is answered here, without credentials.
  app.addHook("onRequest", corsHook(options.corsOrigins ?? []));
  app.addHook("onRequest", sealedGuard(deps));
  app.addHook("onRequest", authHook(deps));
  // After the auth hook: the buckets are per caller and tenant as well as per address.
  registerRateLimits(app, deps);
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
  registerApiKeys(app, deps);
  registerAuditEvents(app, deps);
  registerForward(app, deps);
  registerForwardDestinations(app, deps);
  registerWebhookIntake(app, deps);
  registerWebhookEndpoints(app, deps);
  registerWebhookEvents(app, deps);
  registerEventDestinations(app, deps);
  if (deps.adminAuth !== undefined) {
    registerAuth(app, { adminAuth: deps.adminAuth, authThrottle: deps.authThrottle });
    registerAdminUsers(app, { adminAuth: deps.adminAuth, authThrottle: deps.authThrottle });
  }
  return app;
}
