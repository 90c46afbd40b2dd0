/**
 * Card numbers and small helpers for the integration suites. The numbers are copied from
 * ../shared/testdata/test-cards.json (published test cards): never a real card.
 */
export const CARDS = {
  visa: "4242424242424242",
  visaDebit: "4000056655665556",
  visaClassic: "4111111111111111",
  visaAlt: "4012888888881881",
  mastercard: "5555555555554444",
  mastercard2Series: "2223003122003222",
  mastercardDebit: "5200828282828210",
  mastercardPrepaid: "5105105105105100",
  amex: "378282246310005",
  amexAlt: "371449635398431",
  discover: "6011111111111117",
  discoverAlt: "6011000990139424",
  diners14: "36227206271667",
  jcb: "3566002020360505",
  unionpay: "6200000000000005",
  unionpay19: "6205500000000000004",
} as const;

/** Numbers from the same file that fail the Luhn check. */
export const INVALID_LUHN = ["4242424242424241", "5555555555554440", "378282246310006"] as const;

/** An expiry year a few years ahead of the machine's clock, so fixtures never expire. */
export const EXP_YEAR = new Date().getUTCFullYear() + 3;

/** `4242 4242 4242 4242`: groups of four joined by `separator` (how people type cards). */
export function grouped(pan: string, separator: " " | "-"): string {
  return (pan.match(/.{1,4}/g) ?? []).join(separator);
}

/** Amex / Diners print layout 4-6-rest: `3782 822463 10005`. */
export function grouped465(pan: string, separator: " " | "-"): string {
  return [pan.slice(0, 4), pan.slice(4, 10), pan.slice(10)].join(separator);
}

/** Every spelling of `pan` a log scanner must not find: plain, 4-grouped and 4-6-5 grouped. */
export function panSpellings(pan: string): string[] {
  return [pan, grouped(pan, " "), grouped(pan, "-"), grouped465(pan, " "), grouped465(pan, "-")];
}

export function bearer(apiKey: string): { authorization: string } {
  return { authorization: `Bearer ${apiKey}` };
}

/** `pv_live_<id>_<secret>` → `key_<id>`, the key id the vault logs and audits. */
export function keyIdOf(apiKey: string): string {
  const id = apiKey.split("_")[2];
  if (id === undefined) throw new Error("not an API key");
  return `key_${id}`;
}

export interface CardInput {
  number: string;
  exp_month: number;
  exp_year: number;
  name?: string;
}

export function card(number: string, extra: Partial<CardInput> = {}): CardInput {
  return { number, exp_month: 12, exp_year: EXP_YEAR, ...extra };
}

/** A problem body with its request id blanked, so two problems can be compared byte for byte. */
export function withoutRequestId(body: string): string {
  return body.replace(/"request_id":"[^"]*"/, '"request_id":"-"');
}
