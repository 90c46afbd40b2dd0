-- payvault schema, version 1. PostgreSQL dialect; runs unchanged on PGlite and PostgreSQL.
-- Card data is never stored in the clear: `tokens.ciphertext` is an AES-256-GCM envelope
-- (see docs/encryption.md). BIN, last four, brand and expiry are kept in the clear for masked
-- views, as PCI DSS 3.4.1 permits.

CREATE TABLE tenants (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
  id           text PRIMARY KEY,
  tenant_id    text NOT NULL REFERENCES tenants (id),
  environment  text NOT NULL CHECK (environment IN ('live', 'test')),
  name         text NOT NULL,
  scopes       text[] NOT NULL,
  -- HMAC-SHA256 of the secret under the `apikey` system key: the secret itself is never stored.
  secret_mac   bytea NOT NULL,
  created_at   timestamptz NOT NULL,
  revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Data-encryption keys, stored only wrapped by the KEK (PCI DSS 3.6.1.2).
-- owner is a tenant id, or 'system' for the vault's own keys (audit chain, API-key MACs).
CREATE TABLE data_keys (
  id           text PRIMARY KEY,
  owner        text NOT NULL,
  purpose      text NOT NULL CHECK (purpose IN ('pan', 'sad', 'fingerprint', 'audit', 'apikey')),
  version      integer NOT NULL,
  wrapped      bytea NOT NULL,
  kek_id       text NOT NULL,
  kek_version  integer NOT NULL,
  created_at   timestamptz NOT NULL,
  UNIQUE (owner, purpose, version)
);

CREATE TABLE tokens (
  tenant_id    text NOT NULL REFERENCES tenants (id),
  id           text NOT NULL,
  format       text NOT NULL CHECK (format IN ('random', 'card_alias')),
  brand        text NOT NULL,
  bin          text NOT NULL,
  last4        text NOT NULL,
  exp_month    smallint NOT NULL,
  exp_year     smallint NOT NULL,
  -- Keyed HMAC of the PAN under the tenant's fingerprint key (never a plain hash).
  fingerprint  text NOT NULL,
  -- Keyed HMAC of the whole card and format; NULL when the token was created with dedupe off.
  dedupe_key   text,
  dek_id       text NOT NULL REFERENCES data_keys (id),
  ciphertext   bytea NOT NULL,
  metadata     jsonb NOT NULL,
  created_at   timestamptz NOT NULL,
  expires_at   timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX tokens_dedupe ON tokens (tenant_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Append-only, hash-chained audit trail (PCI DSS 10.2, 10.3.4). Events are inserted in the same
-- statement or transaction as the change they describe, each with a MAC of its own content, and
-- are never updated. The sealer appends seals: each covers every event whose inserting
-- transaction id is in [from_txid, to_txid), in (txid, id) order, with a digest of those events'
-- ids and MACs and a chain MAC covering the previous seal.
CREATE TABLE audit_events (
  id           text PRIMARY KEY,
  txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
  occurred_at  timestamptz NOT NULL,
  tenant_id    text,
  actor        text NOT NULL,
  action       text NOT NULL,
  object_id    text,
  outcome      text NOT NULL,
  details      jsonb NOT NULL,
  mac_key_id   text NOT NULL,
  row_mac      bytea NOT NULL
);
CREATE INDEX audit_events_txid ON audit_events (txid, id);

CREATE TABLE audit_seals (
  seq          bigint PRIMARY KEY,
  from_txid    xid8 NOT NULL,
  to_txid      xid8 NOT NULL,
  event_count  integer NOT NULL,
  digest       bytea NOT NULL,
  mac_key_id   text NOT NULL,
  chain_mac    bytea NOT NULL,
  sealed_at    timestamptz NOT NULL
);

-- Stripe-style request idempotency, scoped per tenant.
CREATE TABLE idempotency_keys (
  tenant_id        text NOT NULL,
  key              text NOT NULL,
  request_hash     text NOT NULL,
  state            text NOT NULL CHECK (state IN ('in_flight', 'done')),
  response_status  integer,
  response_body    text,
  created_at       timestamptz NOT NULL,
  locked_until     timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
