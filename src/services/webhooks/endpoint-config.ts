import { SecretBytes } from "../../crypto/secret.js";
import type { FieldError } from "../../errors/registry.js";
import type { WebhookProvider } from "../../store/webhook-endpoints-repo.js";
import type { HmacScheme } from "../../webhooks/signatures/hmac.js";
import {
  assertHmacScheme,
  MIN_HMAC_SECRET_BYTES,
  verifyHmacWebhook,
} from "../../webhooks/signatures/hmac.js";
import type { PaypalCertificate } from "../../webhooks/signatures/paypal.js";
import {
  parseTransmissionTime,
  paypalCertificate,
  verifyPaypalWebhook,
} from "../../webhooks/signatures/paypal.js";
import {
  STANDARD_WEBHOOK_HEADERS,
  standardWebhookSecret,
  verifyStandardWebhook,
} from "../../webhooks/signatures/standard-webhooks.js";
import { stripeSigningSecret, verifyStripeWebhook } from "../../webhooks/signatures/stripe.js";
import type {
  WebhookHeaders,
  WebhookVerification,
} from "../../webhooks/signatures/verification.js";
import { accept } from "../../webhooks/signatures/verification.js";
import type { Clock } from "../clock.js";

/** The non-secret settings of an endpoint, as stored in `webhook_endpoints.settings`. */
export interface EndpointSettings {
  /** Generic HMAC only: how the provider signs. */
  readonly hmac?: {
    readonly signature_header: string;
    readonly algorithm: "sha256" | "sha512";
    readonly encoding: "hex" | "base64";
    readonly prefix?: string;
    readonly timestamp_header?: string;
    readonly timestamp_separator?: string;
    readonly tolerance_seconds?: number;
  };
  /** PayPal only: the webhook id in the signed string and the configured certificates. */
  readonly paypal?: {
    readonly webhook_id: string;
    readonly certificates: readonly { readonly url: string; readonly pem: string }[];
  };
  /** Where the provider's event id and type are in the JSON body (dotted paths). */
  readonly event_id_field?: string;
  readonly event_type_field?: string;
}

/** One signing secret as sealed: the provider's text form, and the end of a rotation overlap. */
export interface StoredSecret {
  readonly value: string;
  readonly created_at: string;
  /** ISO time after which the secret no longer verifies; absent for the current secret. */
  readonly not_after?: string;
}

/** Verifies a raw body against the endpoint's scheme; the event id when the scheme carries one. */
export type EndpointVerifier = (
  rawBody: Buffer,
  headers: WebhookHeaders,
) => WebhookVerification<EndpointVerified>;

export interface EndpointVerified {
  /** Standard Webhooks: the signed `webhook-id` (the event's idempotency key). */
  readonly headerEventId?: string;
  /**
   * PayPal: the transmission the signature covers. Its signature binds the body only through a
   * CRC-32, which anyone can match with a few chosen bytes, so a transmission must be usable for
   * one body only (WebhookService enforces it until the signature is stale).
   */
  readonly transmission?: { readonly id: string; readonly sentAtMs: number };
}

/** The tolerance for every timestamped scheme: 5 minutes both ways (issue 6). */
export const TOLERANCE_SECONDS = 300;

const FIELD_PATH = /^[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,3}$/;

/**
 * Checks a secret's form for the provider; returns the field error or undefined. The message
 * never repeats the value.
 */
export function secretIssue(provider: WebhookProvider, secret: string): FieldError | undefined {
  try {
    secretBytes(provider, secret).zeroize();
    return undefined;
  } catch {
    const expected: Record<WebhookProvider, string> = {
      stripe: "whsec_ followed by at least 16 characters (Stripe's endpoint secret)",
      standard: "whsec_ followed by base64 of 24 to 64 bytes",
      hmac: `at least ${MIN_HMAC_SECRET_BYTES} bytes`,
      paypal: "no secret (PayPal signs with a certificate)",
    };
    return { field: "secret", code: "INVALID_FORMAT", message: `must be ${expected[provider]}` };
  }
}

function secretBytes(provider: WebhookProvider, secret: string): SecretBytes {
  switch (provider) {
    case "stripe":
      return stripeSigningSecret(secret);
    case "standard":
      return standardWebhookSecret(secret);
    case "hmac": {
      const bytes = Buffer.from(secret, "utf8");
      if (bytes.length < MIN_HMAC_SECRET_BYTES) throw new RangeError("secret too short");
      return SecretBytes.from(bytes);
    }
    case "paypal":
      throw new TypeError("PayPal endpoints have no secret");
  }
}

/** Field errors of an endpoint's settings (the JSON schema checked their shape already). */
export function settingsIssues(
  provider: WebhookProvider,
  settings: EndpointSettings,
  clock: Clock,
): FieldError[] {
  const issues: FieldError[] = [];
  for (const key of ["event_id_field", "event_type_field"] as const) {
    const path = settings[key];
    if (path !== undefined && !FIELD_PATH.test(path)) {
      issues.push({ field: key, code: "INVALID_FORMAT", message: "must be a dotted field path" });
    }
  }
  if (provider === "hmac") {
    if (settings.hmac === undefined) {
      issues.push({
        field: "hmac",
        code: "FIELD_REQUIRED",
        message: "the HMAC scheme is required",
      });
    } else {
      try {
        assertHmacScheme(hmacScheme(settings.hmac));
      } catch (err) {
        issues.push({ field: "hmac", code: "INVALID_VALUE", message: (err as Error).message });
      }
    }
  } else if (settings.hmac !== undefined) {
    issues.push({ field: "hmac", code: "UNKNOWN_FIELD", message: "only for provider hmac" });
  }
  if (provider === "paypal") {
    if (settings.paypal === undefined) {
      issues.push({
        field: "paypal",
        code: "FIELD_REQUIRED",
        message: "the webhook id and certificate are required",
      });
    } else {
      settings.paypal.certificates.forEach((cert, i) => {
        try {
          const parsed = paypalCertificate(cert.url, cert.pem);
          const now = clock.now().getTime();
          if (Date.parse(parsed.certificate.validTo) < now) {
            issues.push({
              field: `paypal.certificates.${i}.pem`,
              code: "INVALID_VALUE",
              message: "the certificate has expired",
            });
          }
        } catch (err) {
          issues.push({
            field: `paypal.certificates.${i}`,
            code: "INVALID_VALUE",
            message: (err as Error).message,
          });
        }
      });
    }
  } else if (settings.paypal !== undefined) {
    issues.push({ field: "paypal", code: "UNKNOWN_FIELD", message: "only for provider paypal" });
  }
  return issues;
}

function hmacScheme(hmac: NonNullable<EndpointSettings["hmac"]>): HmacScheme {
  return {
    signatureHeader: hmac.signature_header,
    algorithm: hmac.algorithm,
    encoding: hmac.encoding,
    ...(hmac.prefix === undefined ? {} : { prefix: hmac.prefix }),
    ...(hmac.timestamp_header === undefined
      ? {}
      : {
          timestamp: {
            header: hmac.timestamp_header,
            ...(hmac.timestamp_separator === undefined
              ? {}
              : { separator: hmac.timestamp_separator }),
            toleranceSeconds: hmac.tolerance_seconds ?? TOLERANCE_SECONDS,
          },
        }),
  };
}

/** The secrets that verify at `now`: the current one and those still inside their overlap. */
export function liveSecrets(secrets: readonly StoredSecret[], now: Date): StoredSecret[] {
  return secrets.filter(
    (s) => s.not_after === undefined || Date.parse(s.not_after) > now.getTime(),
  );
}

/**
 * The verifier of one endpoint (the signature schemes are in src/webhooks/signatures/). The
 * returned function holds the decoded secrets; `dispose` zeroes them when the cache drops it.
 */
export function endpointVerifier(
  provider: WebhookProvider,
  settings: EndpointSettings,
  secrets: readonly StoredSecret[],
  clock: Clock,
): { verify: EndpointVerifier; dispose: () => void } {
  const keys = provider === "paypal" ? [] : secrets.map((s) => secretBytes(provider, s.value));
  const dispose = () => {
    for (const key of keys) key.zeroize();
  };
  // A secret past its overlap is dropped at verification time too (the cache may outlive it).
  const current = (): SecretBytes[] => {
    const now = clock.now().getTime();
    return keys.filter((_, i) => {
      const end = secrets[i]?.not_after;
      return end === undefined || Date.parse(end) > now;
    });
  };
  switch (provider) {
    case "stripe":
      return {
        dispose,
        verify: (raw, headers) => {
          const result = verifyStripeWebhook(raw, headers, {
            secrets: current(),
            clock,
            toleranceSeconds: TOLERANCE_SECONDS,
          });
          return result.ok ? accept({}) : result;
        },
      };
    case "standard":
      return {
        dispose,
        verify: (raw, headers) => {
          const result = verifyStandardWebhook(raw, headers, {
            secrets: current(),
            clock,
            toleranceSeconds: TOLERANCE_SECONDS,
          });
          return result.ok ? accept({ headerEventId: result.value.id }) : result;
        },
      };
    case "hmac": {
      const scheme = hmacScheme(settings.hmac as NonNullable<EndpointSettings["hmac"]>);
      return {
        dispose,
        verify: (raw, headers) => {
          const result = verifyHmacWebhook(raw, headers, { scheme, secrets: current(), clock });
          return result.ok ? accept({}) : result;
        },
      };
    }
    case "paypal": {
      const paypal = settings.paypal as NonNullable<EndpointSettings["paypal"]>;
      const certificates: PaypalCertificate[] = paypal.certificates.map((c) =>
        paypalCertificate(c.url, c.pem),
      );
      return {
        dispose,
        verify: (raw, headers) => {
          const result = verifyPaypalWebhook(raw, headers, {
            webhookId: paypal.webhook_id,
            certificates,
            clock,
            toleranceSeconds: TOLERANCE_SECONDS,
          });
          if (!result.ok) return result;
          const sentAtMs = parseTransmissionTime(result.value.transmissionTime) ?? 0;
          return accept({ transmission: { id: result.value.transmissionId, sentAtMs } });
        },
      };
    }
  }
}

/** The header that carries the event id for Standard Webhooks (the spec's idempotency key). */
export const STANDARD_ID_HEADER = STANDARD_WEBHOOK_HEADERS.id;
