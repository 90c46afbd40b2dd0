import type { Clock } from "../../services/clock.js";
import { reject, type WebhookRejection } from "./verification.js";

/** Stripe and Standard Webhooks both default to five minutes, accepted in both directions. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** Up to 12 digits: far past year 9999, short enough that `Number` stays exact. */
const UNIX_SECONDS = /^[0-9]{1,12}$/;

/** Parses decimal unix seconds; anything else (sign, fraction, spaces, hex) is refused. */
export function parseUnixSeconds(text: string): number | undefined {
  return UNIX_SECONDS.test(text) ? Number(text) : undefined;
}

export function nowUnixSeconds(clock: Clock): number {
  return Math.floor(clock.now().getTime() / 1000);
}

/**
 * Replay window check (Standard Webhooks "Verifying signatures"; Stripe's 300 s default):
 * |now - timestamp| <= tolerance passes, so the edges themselves are inside the window. A
 * timestamp in the future is refused as well, which bounds how long a captured request can be
 * replayed even against a receiver whose clock lags.
 */
export function checkTolerance(
  timestampSeconds: number,
  nowSeconds: number,
  toleranceSeconds: number,
  header: string,
): WebhookRejection | undefined {
  if (nowSeconds - timestampSeconds > toleranceSeconds) {
    return reject("timestamp_too_old", header);
  }
  if (timestampSeconds - nowSeconds > toleranceSeconds) {
    return reject("timestamp_in_future", header);
  }
  return undefined;
}

/** Refuses tolerances that are not a whole number of seconds in [1, 3600] at configuration time. */
export function assertTolerance(toleranceSeconds: number): void {
  if (!Number.isInteger(toleranceSeconds) || toleranceSeconds < 1 || toleranceSeconds > 3600) {
    throw new RangeError(
      "webhook timestamp tolerance must be a whole number of seconds in 1..3600",
    );
  }
}
