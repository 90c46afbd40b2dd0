import { PASSWORD_HISTORY_DEPTH } from "../../auth/passwords.js";
import type { Principal } from "../principal.js";

/**
 * The numbers of admin authentication, each with the rule it implements (docs/admin-auth.md).
 */

/** Access tokens live at most 15 minutes (issue 5: "short-lived access JWT (≤ 15 min)"). */
export const ACCESS_TOKEN_TTL_SECONDS = 900;
/** PCI DSS 8.2.8: a session idle for more than 15 minutes ends; the user logs in again. */
export const SESSION_IDLE_MS = 15 * 60_000;
/** A session (refresh-token family) ends 12 hours after login however active it is. */
export const SESSION_MAX_MS = 12 * 3_600_000;
/** `last_seen_at` is written at most this often, so an active session costs one write a minute. */
export const SESSION_TOUCH_INTERVAL_MS = 60_000;
/** PCI DSS 8.3.4: lock the account after not more than 10 invalid attempts... */
export const LOCKOUT_THRESHOLD = 10;
/** ...for at least 30 minutes (or until an administrator unlocks it). */
export const LOCKOUT_MS = 30 * 60_000;
/** An enrollment token works for 24 hours, once. */
export const ENROLLMENT_TTL_MS = 24 * 3_600_000;
/** Password history rows kept per user: the policy compares with the last four (PCI DSS 8.3.7). */
export const PASSWORD_HISTORY_KEEP = PASSWORD_HISTORY_DEPTH;
/** Revealing a card as a person and key ceremonies need a second factor this recent. */
export const STEP_UP_WINDOW_MS = 5 * 60_000;

/**
 * True when a route marked `stepUp` must refuse this caller with MFA_STEP_UP_REQUIRED: a person
 * whose session last proved a second factor more than STEP_UP_WINDOW_MS ago (PCI DSS 8.4.1,
 * 8.5.1). API keys are machines without a second factor and are never asked.
 */
export function needsStepUp(principal: Principal, now: Date): boolean {
  if (principal.kind !== "user") return false;
  if (principal.mfaAt === undefined) return true;
  return now.getTime() - principal.mfaAt.getTime() > STEP_UP_WINDOW_MS;
}
