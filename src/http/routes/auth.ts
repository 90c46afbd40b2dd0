import type { FastifyInstance } from "fastify";
import { VaultError } from "../../errors/registry.js";
import type { Environment } from "../../keys/key-manager.js";
import type { AdminAuth } from "../../services/admin-users/admin-auth.js";
import type { TokenPair } from "../../services/admin-users/sessions.js";
import { normalizeUsername } from "../../services/admin-users/username.js";
import type { AuthThrottle } from "../context.js";
import { principalOf } from "../context.js";

/**
 * Admin authentication (docs/admin-auth.md): login with password and TOTP (or a recovery code),
 * rotating refresh, logout, step-up, password change, and enrolment with a one-time token.
 * Every answer carries `Cache-Control: no-store` (global): tokens and TOTP secrets must never be
 * cached. Failures are one stable code each (LOGIN_FAILED never says which factor was wrong).
 */

// Bounds before any work: scrypt's input is capped by the password policy at 1024 code points.
const password = { type: "string", minLength: 1, maxLength: 4096 } as const;
const code = { type: "string", minLength: 1, maxLength: 16 } as const;
const secretToken = { type: "string", minLength: 1, maxLength: 200 } as const;

const loginBody = {
  type: "object",
  additionalProperties: false,
  required: ["username", "password"],
  properties: {
    username: { type: "string", minLength: 1, maxLength: 256 },
    password,
    code,
    recovery_code: { type: "string", minLength: 1, maxLength: 64 },
    environment: { type: "string", enum: ["live", "test"] },
  },
} as const;

const tokenResponse = {
  type: "object",
  additionalProperties: false,
  required: ["access_token", "token_type", "expires_in"],
  properties: {
    access_token: { type: "string" },
    token_type: { type: "string" },
    expires_in: { type: "integer" },
    refresh_token: { type: "string" },
  },
} as const;

const enrollResponse = {
  type: "object",
  additionalProperties: false,
  required: ["otpauth_uri", "secret", "recovery_codes"],
  properties: {
    otpauth_uri: { type: "string" },
    secret: { type: "string" },
    recovery_codes: { type: "array", items: { type: "string" } },
  },
} as const;

function body(fields: Record<string, object>) {
  return {
    type: "object",
    additionalProperties: false,
    required: Object.keys(fields),
    properties: fields,
  } as const;
}

/** RFC 6749 §5.1 member names. */
function tokenView(pair: TokenPair) {
  return {
    access_token: pair.accessToken,
    token_type: pair.tokenType,
    expires_in: pair.expiresIn,
    ...(pair.refreshToken === undefined ? {} : { refresh_token: pair.refreshToken }),
  };
}

export function registerAuth(
  app: FastifyInstance,
  deps: { readonly adminAuth: AdminAuth; readonly authThrottle?: AuthThrottle | undefined },
): void {
  const auth = deps.adminAuth;

  app.post(
    "/v1/auth/login",
    { bodyLimit: 16 * 1024, schema: { body: loginBody, response: { 200: tokenResponse } } },
    async (request) => {
      const input = request.body as {
        username: string;
        password: string;
        code?: string;
        recovery_code?: string;
        environment?: Environment;
      };
      // Guessable secrets (a password, a 6-digit code): blocked before any scrypt runs, per
      // address and per username, across nodes; the lockout after 10 failures is the user's own.
      const throttleKey = `user:${normalizeUsername(input.username) ?? ""}`;
      await deps.authThrottle?.before(request, throttleKey);
      let pair: TokenPair;
      try {
        pair = await auth.login(
          {
            username: input.username,
            password: input.password,
            code: input.code,
            recoveryCode: input.recovery_code,
            environment: input.environment,
          },
          { ip: request.ip },
        );
      } catch (err) {
        if (err instanceof VaultError && err.code === "LOGIN_FAILED")
          await deps.authThrottle?.failed(request, throttleKey);
        throw err;
      }
      await deps.authThrottle?.succeeded(request, throttleKey);
      return tokenView(pair);
    },
  );

  app.post(
    "/v1/auth/refresh",
    {
      bodyLimit: 4 * 1024,
      schema: { body: body({ refresh_token: secretToken }), response: { 200: tokenResponse } },
    },
    async (request) => {
      const { refresh_token } = request.body as { refresh_token: string };
      return tokenView(await auth.sessions.refresh(refresh_token, { ip: request.ip }));
    },
  );

  app.post(
    "/v1/auth/enroll",
    {
      bodyLimit: 16 * 1024,
      schema: {
        body: body({ enrollment_token: secretToken, password }),
        response: { 200: enrollResponse },
      },
    },
    async (request) => {
      const input = request.body as { enrollment_token: string; password: string };
      const secrets = await auth.enrollment.enroll(input.enrollment_token, input.password, {
        ip: request.ip,
      });
      return {
        otpauth_uri: secrets.otpauthUri,
        secret: secrets.secret,
        recovery_codes: secrets.recoveryCodes,
      };
    },
  );

  app.post(
    "/v1/auth/enroll/confirm",
    { bodyLimit: 4 * 1024, schema: { body: body({ enrollment_token: secretToken, code }) } },
    async (request, reply) => {
      const input = request.body as { enrollment_token: string; code: string };
      await auth.enrollment.confirm(input.enrollment_token, input.code, { ip: request.ip });
      reply.code(204);
    },
  );

  app.post("/v1/auth/logout", { bodyLimit: 1024 }, async (request, reply) => {
    await auth.sessions.logout(principalOf(request), { ip: request.ip });
    reply.code(204);
  });

  app.post(
    "/v1/auth/step-up",
    { bodyLimit: 4 * 1024, schema: { body: body({ code }), response: { 200: tokenResponse } } },
    async (request) => {
      const input = request.body as { code: string };
      return tokenView(
        await auth.account.stepUp(principalOf(request), input.code, { ip: request.ip }),
      );
    },
  );

  app.post(
    "/v1/auth/password",
    {
      bodyLimit: 16 * 1024,
      schema: { body: body({ current_password: password, new_password: password, code }) },
    },
    async (request, reply) => {
      const input = request.body as {
        current_password: string;
        new_password: string;
        code: string;
      };
      await auth.account.changePassword(
        principalOf(request),
        {
          currentPassword: input.current_password,
          newPassword: input.new_password,
          code: input.code,
        },
        { ip: request.ip },
      );
      reply.code(204);
    },
  );
}
