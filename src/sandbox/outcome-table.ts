/**
 * What the sandbox processor answers for a card (docs/sandbox-processor.md, "Outcomes"). The
 * sandbox is NOT a card processor: it authorizes nothing and moves no money. It answers by
 * publicly documented test card numbers only, the way processors' test modes do, so demos and
 * tests can reach every branch of a payment flow without a real card.
 *
 * Pure: no I/O, no clock (the caller says whether the card's expiry month is over).
 */

/** Codes on the charge and in its `charge.failed` event, after Stripe's error codes. */
export type FailureCode = "card_declined" | "expired_card" | "incorrect_cvc" | "processing_error";

export type ChargeOutcome =
  | { readonly kind: "approved" }
  | {
      readonly kind: "declined";
      readonly code: Exclude<FailureCode, "processing_error">;
      /** The issuer's reason (Stripe's `decline_code`). */
      readonly declineCode: string;
      readonly message: string;
    }
  | { readonly kind: "error"; readonly code: "processing_error"; readonly message: string };

export interface OutcomeRow {
  /** A public test card number (Stripe's test-mode table); every one passes Luhn. */
  readonly number: string;
  readonly outcome: Exclude<ChargeOutcome, { kind: "approved" }>;
}

const DECLINED = "Your card was declined.";

/** The numbers that do not approve. Any other valid card number is approved. */
export const OUTCOME_TABLE: readonly OutcomeRow[] = [
  {
    number: "4000000000000002",
    outcome: {
      kind: "declined",
      code: "card_declined",
      declineCode: "generic_decline",
      message: DECLINED,
    },
  },
  {
    number: "4000000000009995",
    outcome: {
      kind: "declined",
      code: "card_declined",
      declineCode: "insufficient_funds",
      message: "Your card has insufficient funds.",
    },
  },
  {
    number: "4000000000009987",
    outcome: {
      kind: "declined",
      code: "card_declined",
      declineCode: "lost_card",
      message: DECLINED,
    },
  },
  {
    number: "4000000000000069",
    outcome: {
      kind: "declined",
      code: "expired_card",
      declineCode: "expired_card",
      message: "Your card has expired.",
    },
  },
  {
    number: "4000000000000127",
    outcome: {
      kind: "declined",
      code: "incorrect_cvc",
      declineCode: "incorrect_cvc",
      message: "Your card's security code is incorrect.",
    },
  },
  {
    number: "4000000000000119",
    outcome: {
      kind: "error",
      code: "processing_error",
      message: "An error occurred while processing your card. Try again in a little bit.",
    },
  },
];

const BY_NUMBER = new Map(OUTCOME_TABLE.map((row) => [row.number, row.outcome]));

const EXPIRED: ChargeOutcome = {
  kind: "declined",
  code: "expired_card",
  declineCode: "expired_card",
  message: "Your card has expired.",
};

/**
 * The outcome for a card whose number already passed validation (digits, length, Luhn). A card
 * past its expiry month is declined whatever its number: an issuer never authorizes it.
 */
export function outcomeFor(digits: string, expired: boolean): ChargeOutcome {
  if (expired) return EXPIRED;
  return BY_NUMBER.get(digits) ?? { kind: "approved" };
}

/** The HTTP status a processor answers with: 200, 402 (card error) or 500 (processor error). */
export function httpStatusOf(outcome: ChargeOutcome): 200 | 402 | 500 {
  switch (outcome.kind) {
    case "approved":
      return 200;
    case "declined":
      return 402;
    case "error":
      return 500;
  }
}
