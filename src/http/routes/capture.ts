import type { FastifyInstance } from "fastify";
import {
  MAX_SESSION_ORIGINS,
  MAX_SESSION_SECONDS,
} from "../../services/capture/capture-sessions.js";
import type { HttpDeps } from "../context.js";
import { principalOf } from "../context.js";

const sessionBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["origins"],
  properties: {
    origins: {
      type: "array",
      minItems: 1,
      maxItems: MAX_SESSION_ORIGINS,
      items: { type: "string", minLength: 1, maxLength: 200 },
    },
    ttl_seconds: { type: "integer", minimum: 60, maximum: MAX_SESSION_SECONDS },
  },
} as const;

const sessionResponseSchema = {
  type: "object",
  additionalProperties: false,
  required: ["id", "session", "expires_at", "frame_url"],
  properties: {
    id: { type: "string" },
    session: { type: "string" },
    expires_at: { type: "string" },
    frame_url: { type: "string" },
  },
} as const;

const tokenizeBodySchema = {
  type: "object",
  additionalProperties: false,
  required: ["session", "payload"],
  properties: {
    session: { type: "string", minLength: 1, maxLength: 4096 },
    // A compact JWE of a card: a few hundred bytes (RSA-OAEP adds the 384-byte key).
    payload: { type: "string", minLength: 1, maxLength: 16_384 },
  },
} as const;

/**
 * What the public capture route answers: the token and what a checkout page may show. Not the
 * token's metadata, fingerprint or dates, and not whether the card was already held: anyone with
 * a session can call this route, and an existing customer's record is none of their business.
 */
const captureResponseSchema = {
  type: "object",
  additionalProperties: false,
  required: ["id", "card"],
  properties: {
    id: { type: "string" },
    card: {
      type: "object",
      additionalProperties: false,
      required: ["brand", "last4", "exp_month", "exp_year"],
      properties: {
        brand: { type: "string" },
        last4: { type: "string" },
        exp_month: { type: "integer" },
        exp_year: { type: "integer" },
      },
    },
  },
} as const;

/** How long browsers and merchants may cache the JWKS: far inside a rotated key's overlap. */
const JWKS_MAX_AGE_SECONDS = 300;

/**
 * Card capture, the vault's side (docs/capture.md): the public encryption keys browsers encrypt
 * card data to, and short-lived capture sessions a merchant backend asks for.
 */
export function registerCapture(app: FastifyInstance, deps: HttpDeps): void {
  // Public keys only (RFC 7517 §5): no credential needed, cacheable for a few minutes.
  app.get("/v1/capture/jwks", async (_request, reply) => {
    const keys = await deps.joseKeys.encryptionJwks();
    reply.header("cache-control", `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
    return { keys };
  });

  app.post(
    "/v1/capture/sessions",
    {
      bodyLimit: 4096,
      schema: { body: sessionBodySchema, response: { 201: sessionResponseSchema } },
    },
    async (request, reply) => {
      const body = request.body as { origins: string[]; ttl_seconds?: number };
      const created = await deps.captureSessions.create(principalOf(request), {
        origins: body.origins,
        ...(body.ttl_seconds === undefined ? {} : { ttlSeconds: body.ttl_seconds }),
      });
      // The session is a bearer credential for one frame: it goes in the frame's URL, which the
      // vault never logs (route patterns only).
      const frame = new URL("/capture/frame", deps.origin.get());
      frame.searchParams.set("session", created.session);
      reply.code(201);
      return {
        id: created.id,
        session: created.session,
        expires_at: created.expiresAt.toISOString(),
        frame_url: frame.toString(),
      };
    },
  );

  // The session is the credential here (no API key): the capture frame calls this route.
  app.post(
    "/v1/capture/tokenize",
    {
      bodyLimit: 32 * 1024,
      schema: {
        body: tokenizeBodySchema,
        response: { 201: captureResponseSchema },
      },
    },
    async (request, reply) => {
      const body = request.body as { session: string; payload: string };
      const result = await deps.capture.tokenize(body.session, body.payload);
      reply.code(201);
      const { id, card } = result.token;
      return {
        id,
        card: {
          brand: card.brand,
          last4: card.last4,
          exp_month: card.exp_month,
          exp_year: card.exp_year,
        },
      };
    },
  );
}
