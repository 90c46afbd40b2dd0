/**
 * The baseline's own copy of the vault's `tokens` table (migrations/001_initial.sql): the same
 * columns, types, primary key, unique dedupe index and foreign keys, so a bare INSERT or
 * primary-key SELECT costs the database exactly what the vault's statement costs minus the
 * vault's logic (no audit row, no crypto, no validation). The parents hold one row each.
 */
export const BARE_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS bare_tenants (id text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS bare_data_keys (id text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS bare_tokens (
  tenant_id    text NOT NULL REFERENCES bare_tenants (id),
  id           text NOT NULL,
  format       text NOT NULL CHECK (format IN ('random', 'card_alias')),
  brand        text NOT NULL,
  bin          text NOT NULL,
  last4        text NOT NULL,
  exp_month    smallint NOT NULL,
  exp_year     smallint NOT NULL,
  fingerprint  text NOT NULL,
  dedupe_key   text,
  dek_id       text NOT NULL REFERENCES bare_data_keys (id),
  ciphertext   bytea NOT NULL,
  metadata     jsonb NOT NULL,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS bare_tokens_dedupe
  ON bare_tokens (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL;
INSERT INTO bare_tenants (id) VALUES ('ten_bench') ON CONFLICT DO NOTHING;
INSERT INTO bare_data_keys (id) VALUES ('dek_bench') ON CONFLICT DO NOTHING;
`;

export const BARE_TENANT = "ten_bench";
export const BARE_DEK = "dek_bench";

export const BARE_INSERT_SQL = `INSERT INTO bare_tokens (tenant_id, id, format, brand, bin, last4,
  exp_month, exp_year, fingerprint, dedupe_key, dek_id, ciphertext, metadata, created_at, expires_at)
  VALUES ($1, $2, 'random', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, NULL)`;

export const BARE_SELECT_SQL = `SELECT tenant_id, id, format, brand, bin, last4, exp_month, exp_year,
  fingerprint, dedupe_key, dek_id, ciphertext, metadata, created_at, expires_at
  FROM bare_tokens WHERE tenant_id = $1 AND id = $2`;
