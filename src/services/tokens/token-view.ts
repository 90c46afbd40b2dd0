import type { TokenRow } from "../../store/tokens-repo.js";

/** What a token looks like to a caller holding `tokens:read`: never more than BIN + last 4 (PCI DSS 3.4.1). */
export interface TokenView {
  readonly id: string;
  readonly format: "random" | "card_alias";
  readonly card: {
    readonly brand: string;
    readonly bin: string;
    readonly last4: string;
    readonly exp_month: number;
    readonly exp_year: number;
  };
  readonly fingerprint: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly created_at: string;
  /** The end of retention; null for a persistent token (a stored credential). */
  readonly expires_at: string | null;
  readonly persistent: boolean;
}

export function toTokenView(row: TokenRow): TokenView {
  return {
    id: row.id,
    format: row.format,
    card: {
      brand: row.brand,
      bin: row.bin,
      last4: row.last4,
      exp_month: row.exp_month,
      exp_year: row.exp_year,
    },
    fingerprint: row.fingerprint,
    metadata: row.metadata,
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    persistent: row.persistent,
  };
}
