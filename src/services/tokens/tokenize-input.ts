import type { Card } from "../../domain/card.js";
import { parseCard } from "../../domain/card.js";
import type { Cvc } from "../../domain/cvc.js";
import type { FieldIssue } from "../../domain/field-issue.js";
import { findPanLikeRuns } from "../../domain/pan.js";
import type { TokenFormat } from "../../domain/token-format.js";

/** A tokenize request after the HTTP schema has checked its shape. */
export interface TokenizeRequest {
  readonly card: unknown;
  readonly format?: TokenFormat;
  readonly expires_at?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly dedupe?: boolean;
  /** A stored credential: kept until deleted instead of expiring with the retention policy. */
  readonly persistent?: boolean;
}

export interface ValidTokenizeRequest {
  readonly card: Card;
  /** Never stored with the token: held in the ephemeral CVC store until authorization. */
  readonly cvc: Cvc | undefined;
  readonly format: TokenFormat;
  readonly expiresAt: Date | null;
  readonly metadata: Readonly<Record<string, string>>;
  readonly dedupe: boolean;
  readonly persistent: boolean;
}

/** Field error codes this file adds to the domain's (docs/errors.md lists them). */
export const REQUEST_ISSUE_CODES = [
  "EXPIRES_AT_INVALID",
  "METADATA_CONTAINS_PAN",
  "PURPOSE_CONTAINS_PAN",
  "RETENTION_CONFLICT",
] as const;

/**
 * The purpose of a reveal goes into the audit trail as written, so it must not carry a card
 * number (the audit trail is storage too: PCI DSS 3.5.1).
 */
export function purposeIssues(purpose: string): FieldIssue[] {
  if (findPanLikeRuns(purpose).length === 0) return [];
  return [
    {
      field: "purpose",
      code: "PURPOSE_CONTAINS_PAN",
      message: "The purpose must not contain a card number; it is written to the audit trail.",
    },
  ];
}

const MAX_EXPIRY_MS = 50 * 366 * 24 * 3600 * 1000;

/**
 * Semantic checks the schema cannot make: the card itself (PAN, expiry, name), an expiry date in
 * the future, and metadata that carries no card number (metadata is stored in the clear, so a
 * PAN pasted into it would defeat the vault; PCI DSS 3.5.1).
 */
export function validateTokenizeRequest(
  request: TokenizeRequest,
  now: Date,
  fieldPrefix = "",
): { ok: true; value: ValidTokenizeRequest } | { ok: false; issues: FieldIssue[] } {
  const issues: FieldIssue[] = [];
  const card = parseCard(request.card, now, { fieldPrefix: `${fieldPrefix}card` });
  if (!card.ok) issues.push(...card.issues);
  let expiresAt: Date | null = null;
  if (request.expires_at !== undefined) {
    expiresAt = new Date(request.expires_at);
    const ms = expiresAt.getTime();
    if (Number.isNaN(ms) || ms <= now.getTime() || ms - now.getTime() > MAX_EXPIRY_MS) {
      issues.push({
        field: `${fieldPrefix}expires_at`,
        code: "EXPIRES_AT_INVALID",
        message: "expires_at must be a date-time in the future (at most 50 years ahead).",
      });
    }
  }
  if (request.persistent === true && request.expires_at !== undefined) {
    issues.push({
      field: `${fieldPrefix}persistent`,
      code: "RETENTION_CONFLICT",
      message: "A persistent token has no expiry: send either persistent or expires_at, not both.",
    });
  }
  for (const [key, value] of Object.entries(request.metadata ?? {})) {
    if (findPanLikeRuns(key).length > 0 || findPanLikeRuns(value).length > 0) {
      issues.push({
        field: `${fieldPrefix}metadata`,
        code: "METADATA_CONTAINS_PAN",
        message: "metadata must not contain card numbers; metadata is stored unencrypted.",
      });
      break;
    }
  }
  if (!card.ok || issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      card: card.value.card,
      cvc: card.value.cvc,
      format: request.format ?? "random",
      expiresAt,
      metadata: request.metadata ?? {},
      dedupe: request.dedupe ?? true,
      persistent: request.persistent ?? false,
    },
  };
}
