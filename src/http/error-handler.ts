import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { EphemeralStoreUnavailableError } from "../ephemeral/ephemeral-store.js";
import type { ErrorCode, FieldError } from "../errors/registry.js";
import { VaultError } from "../errors/registry.js";
import { KeyServiceUnavailableError, VaultSealedError } from "../keys/key-manager.js";
import { UnsealError } from "../keys/seal.js";
import { PROBLEM_CONTENT_TYPE, problemOf } from "./problem.js";
import { toFieldErrors } from "./validation.js";

// Fastify's own errors for bad requests, mapped to registry codes.
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "INVALID_REQUEST",
  FST_ERR_CTP_EMPTY_JSON_BODY: "MALFORMED_JSON",
  FST_ERR_CTP_INVALID_JSON_BODY: "MALFORMED_JSON",
};

function classify(err: FastifyError | VaultError): {
  code: ErrorCode;
  errors?: readonly FieldError[];
  detail?: string;
} {
  if (err instanceof VaultError) {
    return {
      code: err.code,
      ...(err.errors ? { errors: err.errors } : {}),
      ...(err.detail ? { detail: err.detail } : {}),
    };
  }
  if (err instanceof KeyServiceUnavailableError) return { code: "KEY_SERVICE_UNAVAILABLE" };
  if (err instanceof VaultSealedError) return { code: "VAULT_SEALED" };
  if (err instanceof EphemeralStoreUnavailableError) return { code: "EPHEMERAL_STORE_UNAVAILABLE" };
  // The unseal errors' messages are the vault's own words, never the share.
  if (err instanceof UnsealError) return { code: err.code, detail: err.message };
  if (err.validation !== undefined) {
    return { code: "VALIDATION_FAILED", errors: toFieldErrors(err.validation as never) };
  }
  const mapped = err.code === undefined ? undefined : FASTIFY_CODES[err.code];
  if (mapped !== undefined) return { code: mapped };
  if (typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 500) {
    return { code: "INVALID_REQUEST" };
  }
  return { code: "INTERNAL_ERROR" };
}

/**
 * The one error handler: every error leaves as an RFC 9457 problem built from the registry.
 * Messages of unexpected errors stay in the log (which scrubs card numbers) and never reach the
 * client.
 */
export function errorHandler(
  err: FastifyError | VaultError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const { code, errors, detail } = classify(err);
  const problem = problemOf(code, request.id, { errors, detail });
  if (problem.status >= 500) {
    const cause = err instanceof VaultError ? err.cause : err;
    request.log.error(
      {
        request_id: request.id,
        code,
        err:
          cause instanceof Error
            ? { type: cause.name, message: cause.message, code: (cause as { code?: unknown }).code }
            : undefined,
      },
      "request failed",
    );
  }
  if (err instanceof VaultError && err.headers !== undefined) reply.headers(err.headers);
  if (err instanceof UnsealError && err.retryAfterSeconds !== undefined) {
    reply.header("retry-after", String(err.retryAfterSeconds));
  }
  return reply.code(problem.status).header("content-type", PROBLEM_CONTENT_TYPE).send(problem);
}
