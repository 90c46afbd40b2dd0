/**
 * The vault's own events, as merchants subscribe to them (docs/webhooks-outbound.md, "Event
 * catalogue"). Every event carries metadata only: ids, types, states, never card data
 * (PCI DSS 3.2.1, 3.3.1: no cardholder data or SAD leaves in a notification).
 *
 * - `token.created`, `token.deleted`: from the audit trail (the outbox, token-event-dispatcher.ts);
 *   `data` is `{ token }`.
 * - `payment.<provider event type>`: a processed provider webhook (Stripe's `charge.succeeded`
 *   becomes `payment.charge.succeeded`); `data` is the event's stored metadata.
 *
 * A subscription lists exact types, the family `payment.*`, or `*` (everything).
 */
export const TOKEN_EVENT_TYPES = ["token.created", "token.deleted"] as const;
export type TokenEventType = (typeof TOKEN_EVENT_TYPES)[number];

export const PAYMENT_EVENT_PREFIX = "payment.";
export const ALL_EVENTS = "*";
export const ALL_PAYMENT_EVENTS = "payment.*";

/** `payment.` and one to six lowercase dot-separated segments, at most 100 characters. */
const PAYMENT_EVENT_TYPE = /^payment(?:\.[a-z0-9_]{1,40}){1,6}$/;
const MAX_TYPE_LENGTH = 100;

/** Examples of payment types (documented; any well-formed `payment.…` type is accepted). */
export const PAYMENT_EVENT_EXAMPLES = [
  "payment.charge.succeeded",
  "payment.charge.failed",
  "payment.charge.refunded",
  "payment.authorization.declined",
] as const;

/** True for a type the vault can publish: a token type or a well-formed payment type. */
export function isEventType(type: string): boolean {
  if ((TOKEN_EVENT_TYPES as readonly string[]).includes(type)) return true;
  return type.length <= MAX_TYPE_LENGTH && PAYMENT_EVENT_TYPE.test(type);
}

/** True for what a destination may list in `event_types`: an event type, `payment.*` or `*`. */
export function isSubscription(entry: string): boolean {
  return entry === ALL_EVENTS || entry === ALL_PAYMENT_EVENTS || isEventType(entry);
}

/** Whether a destination subscribed to `subscriptions` receives an event of `type`. */
export function subscribes(subscriptions: readonly string[], type: string): boolean {
  return subscriptions.some(
    (entry) =>
      entry === type ||
      entry === ALL_EVENTS ||
      (entry === ALL_PAYMENT_EVENTS && type.startsWith(PAYMENT_EVENT_PREFIX)),
  );
}

/**
 * The vault's type for a provider's event type (`charge.succeeded` → `payment.charge.succeeded`,
 * PayPal's `PAYMENT.CAPTURE.COMPLETED` → `payment.payment.capture.completed`): lowercased, any
 * character outside `[a-z0-9_.]` replaced by `_`. Undefined when the result is not well formed.
 */
export function paymentEventType(providerType: string): string | undefined {
  const normalized = providerType.toLowerCase().replace(/[^a-z0-9_.]/g, "_");
  const type = `${PAYMENT_EVENT_PREFIX}${normalized}`;
  return isEventType(type) ? type : undefined;
}
