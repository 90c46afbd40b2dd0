import { randomInt } from "node:crypto";
import { luhnCheckDigit } from "../domain/luhn.js";

/** The well-known test BIN: no real card is ever issued under it. */
export const TEST_BIN = "424242";
const MIDDLE_DIGITS = 9;
const MIDDLE_SPACE = 10 ** MIDDLE_DIGITS;

export interface TestCard {
  readonly number: string;
  readonly exp_month: number;
  readonly exp_year: number;
}

/**
 * Distinct, Luhn-valid 16-digit test card numbers, made at run time and never written to disk:
 * 424242 + 9 middle digits + check digit. The middle digits start at a random point and count
 * up, so no two cards of one generator collide (a collision would make the vault answer with a
 * duplicate instead of doing a real tokenization) until 10^9 cards.
 */
export class TestCardSource {
  private next = randomInt(MIDDLE_SPACE);
  readonly expMonth = 12;
  readonly expYear = new Date().getUTCFullYear() + 3;

  card(): TestCard {
    const middle = String(this.next).padStart(MIDDLE_DIGITS, "0");
    this.next = (this.next + 1) % MIDDLE_SPACE;
    const partial = TEST_BIN + middle;
    return {
      number: partial + String(luhnCheckDigit(partial)),
      exp_month: this.expMonth,
      exp_year: this.expYear,
    };
  }

  cards(count: number): TestCard[] {
    return Array.from({ length: count }, () => this.card());
  }

  /** The counter's position, for a load tool that makes its own cards (see wrk-script.ts). */
  take(count: number): number {
    const start = this.next;
    this.next = (this.next + count) % MIDDLE_SPACE;
    return start;
  }
}
