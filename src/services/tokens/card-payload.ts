import type { Card } from "../../domain/card.js";

/**
 * The plaintext sealed in `tokens.ciphertext`. The expiry is inside too (the clear columns serve
 * masked views only), so a reveal returns what was encrypted even if a clear column were edited.
 */
export interface CardPayload {
  readonly number: string;
  readonly exp_month: number;
  readonly exp_year: number;
  readonly name?: string;
}

export function encodeCardPayload(card: Card): Buffer {
  const payload: CardPayload = {
    number: card.pan.revealDigits(),
    exp_month: card.expMonth,
    exp_year: card.expYear,
    ...(card.name === undefined ? {} : { name: card.name }),
  };
  return Buffer.from(JSON.stringify(payload), "utf8");
}

export function decodeCardPayload(plaintext: Buffer): CardPayload {
  return JSON.parse(plaintext.toString("utf8")) as CardPayload;
}
