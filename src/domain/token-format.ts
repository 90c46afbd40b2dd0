import { base62Length, encodeBase62, isBase62 } from "./base62.js";
import { luhnValid } from "./luhn.js";
import type { Pan } from "./pan.js";
import type { RandomSource } from "./random-digits.js";
import { randomBytesExactly, randomDigits } from "./random-digits.js";

/**
 * Token formats. Both are surrogate values with no mathematical relation to the PAN's hidden
 * digits (PCI DSS v4.0.1 3.5.1: index tokens; PCI SSC Tokenization Product Security
 * Guidelines: tokens must not be reversible to the PAN without the vault).
 */
export type TokenFormat = "random" | "card_alias";

export type { RandomSource } from "./random-digits.js";

export const RANDOM_TOKEN_PREFIX = "tok_";
/** 128 bits: unguessable, so a token id is not enumerable. */
const RANDOM_TOKEN_BYTES = 16;
const RANDOM_TOKEN_LENGTH = RANDOM_TOKEN_PREFIX.length + base62Length(RANDOM_TOKEN_BYTES);
/** The longest string `parseTokenId` will look at. */
export const MAX_TOKEN_ID_LENGTH = RANDOM_TOKEN_LENGTH;
const DIGITS_ONLY = /^[0-9]+$/;

/** `tok_` + 22 base62 characters of 128 random bits; never derived from the card. */
export function newRandomToken(rand: RandomSource): string {
  return RANDOM_TOKEN_PREFIX + encodeBase62(randomBytesExactly(rand, RANDOM_TOKEN_BYTES));
}

export function isRandomToken(s: string): boolean {
  return (
    s.length === RANDOM_TOKEN_LENGTH &&
    s.startsWith(RANDOM_TOKEN_PREFIX) &&
    isBase62(s.slice(RANDOM_TOKEN_PREFIX.length))
  );
}

/**
 * A format-preserving alias: same length, same BIN (`pan.bin`) and last 4, random digits in
 * between, and always failing Luhn. Every real PAN ends in a valid Luhn check digit
 * (ISO/IEC 7812-1), so a number that fails it can never be a card: no system that validates
 * PANs will accept the alias as one, and PAN scanners will not report it. When the random
 * digits happen to pass Luhn (1 time in 10), the last middle digit is moved by one: a
 * single-digit change always breaks the Luhn check.
 *
 * A 12-digit PAN keeps 6 + 4 digits and leaves 2 random ones (90 possible aliases per BIN and
 * last 4); the store must treat an alias collision as "draw again".
 */
export function newCardAlias(pan: Pan, rand: RandomSource): string {
  const bin = pan.bin;
  const middleLength = pan.length - bin.length - 4;
  if (middleLength < 1) throw new RangeError("the PAN is too short for a card alias");
  const alias = bin + randomDigits(rand, middleLength) + pan.last4;
  if (!luhnValid(alias)) return alias;
  const at = bin.length + middleLength - 1;
  const moved = String((Number(alias.charAt(at)) + 1) % 10);
  return alias.slice(0, at) + moved + alias.slice(at + 1);
}

/** Digits only, a PAN's length, and failing Luhn: looks like a card but cannot be one. */
export function isCardAlias(s: string): boolean {
  return s.length >= 12 && s.length <= 19 && DIGITS_ONLY.test(s) && !luhnValid(s);
}

/** A token id from a URL or body, in either format; undefined for anything else. */
export function parseTokenId(s: unknown): string | undefined {
  if (typeof s !== "string" || s.length > MAX_TOKEN_ID_LENGTH) return undefined;
  return isRandomToken(s) || isCardAlias(s) ? s : undefined;
}
