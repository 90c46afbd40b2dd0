/** One of the vault's own events, as merchants receive it: metadata only, never card data. */
export interface VaultEvent {
  /** `evt_…`: the Standard Webhooks `webhook-id` of every delivery of this event. */
  readonly id: string;
  readonly tenantId: string;
  /** e.g. `token.created`, `payment.charge.succeeded` (event-catalogue.ts). */
  readonly type: string;
  readonly createdAt: Date;
  readonly data: Readonly<Record<string, unknown>>;
}
