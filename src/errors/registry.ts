/**
 * Every error a client can see, in one table: stable code → HTTP status → title. Responses are
 * RFC 9457 problem documents built from this table only; an unexpected error becomes
 * INTERNAL_ERROR and its message never leaves the process. docs/errors.md is pinned to this
 * table by a test.
 */
export const ERRORS = {
  VALIDATION_FAILED: { status: 400, title: "The request is not valid; see errors for each field." },
  MALFORMED_JSON: { status: 400, title: "The request body is not well-formed JSON." },
  INVALID_UTF8: { status: 400, title: "The request body is not valid UTF-8." },
  INVALID_UNICODE: {
    status: 400,
    title: "The request body holds a string with a lone surrogate or a NUL character.",
  },
  FORBIDDEN_JSON_KEY: {
    status: 400,
    title: "The request body uses a reserved key such as __proto__.",
  },
  INVALID_IDEMPOTENCY_KEY: {
    status: 400,
    title: "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
  },
  INVALID_REQUEST: { status: 400, title: "The request is not valid." },
  JWE_INVALID: {
    status: 400,
    title: "The encrypted payload could not be decrypted or is not acceptable.",
  },
  UNSEAL_SHARE_INVALID: { status: 400, title: "The unseal share is malformed." },
  UNSEAL_SHARE_FOREIGN: {
    status: 400,
    title: "The unseal share belongs to another vault or an older set of shares.",
  },
  UNSEAL_FAILED: {
    status: 400,
    title: "The submitted unseal shares do not reconstruct the unseal key; start again.",
  },
  WEBHOOK_BODY_INVALID: {
    status: 400,
    title: "The webhook body is not a JSON object carrying the provider's event id and type.",
  },
  FORWARD_TEMPLATE_INVALID: {
    status: 400,
    title: "The forward request's template is not valid; see errors for each placeholder.",
  },
  AUTH_MISSING: {
    status: 401,
    title: "A credential is required: send Authorization: Bearer <API key or access token>.",
  },
  AUTH_INVALID: { status: 401, title: "The credential is not valid." },
  AUTH_REVOKED: { status: 401, title: "The credential has been revoked." },
  AUTH_EXPIRED: { status: 401, title: "The credential has expired." },
  CLIENT_CERT_REQUIRED: {
    status: 401,
    title: "This API key must be presented with the client certificate it is bound to.",
  },
  SESSION_EXPIRED: {
    status: 401,
    title: "The session has ended (idle for 15 minutes, logged out or revoked); log in again.",
  },
  LOGIN_FAILED: {
    status: 401,
    title: "The username, password or one-time code is not correct.",
  },
  REFRESH_TOKEN_INVALID: { status: 401, title: "The refresh token is not valid; log in again." },
  MFA_STEP_UP_REQUIRED: {
    status: 401,
    title: "This operation needs a fresh second factor: POST /v1/auth/step-up first.",
  },
  JWT_EXPIRED: { status: 401, title: "The signed or encrypted request has expired." },
  JWT_NOT_YET_VALID: {
    status: 401,
    title: "The request was issued in the future; check the client's clock.",
  },
  JWT_CLAIMS_INVALID: {
    status: 401,
    title: "The request's claims do not match: issuer, audience, lifetime, jti, method or URL.",
  },
  CAPTURE_SESSION_INVALID: {
    status: 401,
    title: "The capture session is invalid or has expired; ask the merchant for a new one.",
  },
  WEBHOOK_SIGNATURE_INVALID: {
    status: 401,
    title:
      "The webhook's signature is missing, malformed, outside the time tolerance or does not match.",
  },
  INSUFFICIENT_SCOPE: {
    status: 403,
    title: "The credential does not have the scope this operation needs.",
  },
  CLIENT_IP_NOT_ALLOWED: {
    status: 403,
    title: "This API key may not be used from the client's address.",
  },
  SCOPE_NOT_GRANTABLE: {
    status: 403,
    title: "A credential can be given only scopes its creator holds.",
  },
  CEREMONY_SELF_APPROVAL: {
    status: 403,
    title: "A key ceremony must be approved by a different principal than the one who proposed it.",
  },
  FORWARD_DESTINATION_NOT_ALLOWED: {
    status: 403,
    title: "The destination is not an HTTPS URL on the tenant's forward allowlist.",
  },
  FORWARD_ADDRESS_REFUSED: {
    status: 403,
    title:
      "The destination resolves to a loopback, private, link-local or metadata address; it is refused.",
  },
  TOKEN_NOT_FOUND: { status: 404, title: "No such token." },
  ROUTE_NOT_FOUND: { status: 404, title: "No such route." },
  KEY_NOT_FOUND: { status: 404, title: "No such key." },
  API_KEY_NOT_FOUND: { status: 404, title: "No such API key." },
  ADMIN_USER_NOT_FOUND: { status: 404, title: "No such admin user." },
  CEREMONY_NOT_FOUND: { status: 404, title: "No such key ceremony." },
  JOSE_KEY_NOT_FOUND: { status: 404, title: "No such registered key." },
  FORWARD_DESTINATION_NOT_FOUND: { status: 404, title: "No such forward destination." },
  WEBHOOK_ENDPOINT_NOT_FOUND: { status: 404, title: "No such webhook endpoint." },
  WEBHOOK_EVENT_NOT_FOUND: { status: 404, title: "No such webhook event." },
  EVENT_DESTINATION_NOT_FOUND: { status: 404, title: "No such event destination." },
  EVENT_DELIVERY_NOT_FOUND: { status: 404, title: "No such event delivery." },
  IDEMPOTENCY_IN_FLIGHT: {
    status: 409,
    title: "A request with this Idempotency-Key is still being processed.",
  },
  UNSEAL_SHARE_DUPLICATE: { status: 409, title: "This unseal share was already submitted." },
  REKEY_NOT_PENDING: {
    status: 409,
    title: "No custodian rekey is waiting for confirmation.",
  },
  CEREMONY_NOT_PENDING: { status: 409, title: "The key ceremony has already been decided." },
  JWT_REPLAYED: { status: 409, title: "This request's jti was already used; send a new one." },
  API_KEY_NOT_ROTATABLE: {
    status: 409,
    title:
      "Only a current API key can be rotated: this one is revoked, expired or already rotated.",
  },
  ADMIN_USER_EXISTS: { status: 409, title: "An admin user with this username already exists." },
  JOSE_KEY_EXISTS: { status: 409, title: "The tenant already registered a key with this kid." },
  FORWARD_DESTINATION_EXISTS: {
    status: 409,
    title: "This host and path prefix are already on the forward allowlist.",
  },
  LIMIT_REACHED: {
    status: 409,
    title: "The tenant already holds as many of these as allowed; delete one first.",
  },
  NOT_DEAD_LETTERED: {
    status: 409,
    title: "Only a dead-lettered event or delivery can be replayed or purged.",
  },
  KEY_IN_USE: {
    status: 409,
    title:
      "Tokens are still encrypted under this key; re-encrypt them first, or destroy it with force.",
  },
  ROTATION_IN_PROGRESS: {
    status: 409,
    title: "Another node is rotating or re-wrapping these keys; try again when it has finished.",
  },
  CEREMONY_EXPIRED: { status: 410, title: "The key ceremony expired before it was approved." },
  KEY_DESTROYED: {
    status: 410,
    title:
      "The key protecting this card data has been destroyed; the card data cannot be recovered.",
  },
  PAYLOAD_TOO_LARGE: { status: 413, title: "The request body is larger than this route accepts." },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "The request body must be application/json." },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: "This Idempotency-Key was used with a different request.",
  },
  WEBHOOK_CARD_DATA: {
    status: 422,
    title: "The webhook carries what looks like a card number; it was refused and not stored.",
  },
  CVC_NOT_AVAILABLE: {
    status: 422,
    title:
      "The template uses a CVC, but none is held for the token (never sent, already used or expired).",
  },
  CAPTURE_ATTEMPTS_EXCEEDED: {
    status: 429,
    title: "This capture session was used too many times; ask the merchant for a new one.",
  },
  RATE_LIMITED: {
    status: 429,
    title: "Too many requests; retry after the number of seconds in Retry-After.",
  },
  AUTH_BACKOFF: {
    status: 429,
    title: "Too many failed authentications; retry after the number of seconds in Retry-After.",
  },
  UNSEAL_LOCKED: { status: 429, title: "Too many refused unseal shares; try again later." },
  INTERNAL_ERROR: { status: 500, title: "The vault could not complete the request." },
  DECRYPTION_FAILED: { status: 500, title: "The stored card data could not be decrypted." },
  FORWARD_UPSTREAM_FAILED: {
    status: 502,
    title: "The destination could not be reached, refused TLS, or sent an answer too large.",
  },
  STORE_UNAVAILABLE: { status: 503, title: "The token store is unavailable." },
  FORWARD_UPSTREAM_TIMEOUT: {
    status: 504,
    title: "The destination did not answer within the forward timeout.",
  },
  KEY_SERVICE_UNAVAILABLE: { status: 503, title: "The key service is unavailable." },
  AUDIT_UNAVAILABLE: {
    status: 503,
    title: "The audit trail cannot be written, so the operation was refused.",
  },
  NOT_READY: { status: 503, title: "The vault is not ready." },
  EPHEMERAL_STORE_UNAVAILABLE: {
    status: 503,
    title: "The short-lived store (CVCs, replay checks) is unavailable; retry the request.",
  },
  RATE_LIMIT_UNAVAILABLE: {
    status: 503,
    title: "The shared rate limiter is unavailable; retry the request.",
  },
  VAULT_SEALED: {
    status: 503,
    title: "The vault is sealed: a threshold of unseal shares must be submitted first.",
  },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface FieldError {
  readonly field: string;
  readonly code: string;
  readonly message: string;
}

/**
 * An error meant for the client. Its text comes from the registry (plus an optional fixed
 * `detail` written by the vault, never a value from the request).
 */
export class VaultError extends Error {
  override readonly name = "VaultError";
  readonly status: number;
  readonly detail: string | undefined;
  readonly errors: readonly FieldError[] | undefined;
  /** Response headers the problem needs (Retry-After, RateLimit); never request values. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  constructor(
    readonly code: ErrorCode,
    options: {
      detail?: string;
      errors?: readonly FieldError[];
      cause?: unknown;
      headers?: Readonly<Record<string, string>>;
    } = {},
  ) {
    // The cause stays in the process (for the log); it is never part of a response.
    super(ERRORS[code].title, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = ERRORS[code].status;
    this.detail = options.detail;
    this.errors = options.errors;
    this.headers = options.headers;
  }
}
