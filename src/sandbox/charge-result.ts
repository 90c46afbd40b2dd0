import type { FieldIssue } from "../domain/field-issue.js";
import type { ChargeRequest } from "./charge-request.js";
import type { ChargeOutcome, FailureCode } from "./outcome-table.js";

/**
 * The sandbox's charge and the bodies built from it: the HTTP answer and the webhook event.
 * Every shape here is built field by field from an allowlist, so neither the card number nor
 * the CVC can reach a response or an event (PCI DSS v4.0.1 3.3.1.2, 3.4.1): the card is only
 * ever its brand, last four digits and expiry.
 */
export interface SandboxCharge {
  readonly id: string;
  readonly created: number;
  readonly amount: number;
  readonly currency: string;
  readonly status: "succeeded" | "failed";
  /** Set only when the charge was approved. */
  readonly authorizationId: string | undefined;
  readonly outcome: ChargeOutcome;
  readonly card: {
    readonly brand: string;
    readonly last4: string;
    readonly expMonth: number;
    readonly expYear: number;
  };
}

export interface ChargeIds {
  readonly chargeId: string;
  readonly authorizationId: string;
}

export function chargeOf(
  request: ChargeRequest,
  outcome: ChargeOutcome,
  ids: ChargeIds,
  now: Date,
): SandboxCharge {
  const approved = outcome.kind === "approved";
  return {
    id: ids.chargeId,
    created: Math.floor(now.getTime() / 1000),
    amount: request.amount,
    currency: request.currency,
    status: approved ? "succeeded" : "failed",
    authorizationId: approved ? ids.authorizationId : undefined,
    outcome,
    card: {
      brand: request.pan.brand,
      last4: request.pan.last4,
      expMonth: request.expMonth,
      expYear: request.expYear,
    },
  };
}

function failureCodeOf(charge: SandboxCharge): FailureCode | undefined {
  return charge.outcome.kind === "approved" ? undefined : charge.outcome.code;
}

/** The 200 body of an approved charge (a subset of Stripe's Charge object). */
export function chargeBody(charge: SandboxCharge): Record<string, unknown> {
  return {
    id: charge.id,
    object: "charge",
    created: charge.created,
    livemode: false,
    status: charge.status,
    paid: charge.status === "succeeded",
    authorization_id: charge.authorizationId,
    amount: charge.amount,
    currency: charge.currency,
    card: {
      brand: charge.card.brand,
      last4: charge.card.last4,
      exp_month: charge.card.expMonth,
      exp_year: charge.card.expYear,
    },
  };
}

/** The 402 or 500 body of a declined or failed charge, shaped like Stripe's error object. */
export function failureBody(charge: SandboxCharge): Record<string, unknown> {
  const { outcome } = charge;
  if (outcome.kind === "approved") throw new TypeError("an approved charge has no failure body");
  return {
    error: {
      type: outcome.kind === "declined" ? "card_error" : "api_error",
      code: outcome.code,
      ...(outcome.kind === "declined" ? { decline_code: outcome.declineCode } : {}),
      message: outcome.message,
      charge: charge.id,
    },
  };
}

/** The 400 body: what was wrong with which field, never the value sent. */
export function invalidRequestBody(issues: readonly FieldIssue[]): Record<string, unknown> {
  const first = issues[0];
  return {
    error: {
      type: "invalid_request_error",
      code: "parameter_invalid",
      message: first?.message ?? "The request is not valid.",
      ...(first === undefined ? {} : { param: first.field }),
      issues: issues.map((i) => ({ param: i.field, code: i.code, message: i.message })),
    },
  };
}

/** Any other refusal (404, 405, 413, 415, malformed body), in the same error shape. */
export function requestErrorBody(code: string, message: string): Record<string, unknown> {
  return { error: { type: "invalid_request_error", code, message } };
}

export type ChargeEventType = "charge.succeeded" | "charge.failed";

export interface ChargeEvent {
  readonly id: string;
  readonly object: "event";
  readonly type: ChargeEventType;
  readonly created: number;
  readonly livemode: false;
  readonly data: { readonly object: Record<string, unknown> };
}

/**
 * The payment event sent to the vault (Stripe's Event object, docs.stripe.com/api/events):
 * metadata only. A webhook must never carry a PAN: the vault refuses one (issue 6, point 3).
 */
export function chargeEvent(charge: SandboxCharge, eventId: string): ChargeEvent {
  const failureCode = failureCodeOf(charge);
  const type: ChargeEventType =
    charge.status === "succeeded" ? "charge.succeeded" : "charge.failed";
  return {
    id: eventId,
    object: "event",
    type,
    created: charge.created,
    livemode: false,
    data: {
      object: {
        id: charge.id,
        object: "charge",
        amount: charge.amount,
        currency: charge.currency,
        status: charge.status,
        ...(charge.authorizationId === undefined
          ? {}
          : { authorization_id: charge.authorizationId }),
        ...(failureCode === undefined ? {} : { failure_code: failureCode }),
        card: { brand: charge.card.brand, last4: charge.card.last4 },
      },
    },
  };
}
