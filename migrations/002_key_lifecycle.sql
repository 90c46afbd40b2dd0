-- payvault schema, version 2: the key lifecycle (PCI DSS 3.2.1, 3.6, 3.7).
-- Keys get environments, expiry epochs, cryptoperiods and retire/destroy times; tokens get an
-- environment, a retention policy and the fingerprint key they were made with; key ceremonies
-- (dual control), re-encryption jobs and purge runs get tables of their own.

-- Tenant retention policy: tokens expire this many days after creation unless persistent.
ALTER TABLE tenants ADD COLUMN retention_days integer NOT NULL DEFAULT 30
  CHECK (retention_days BETWEEN 1 AND 3660);

-- Key records. A key past encrypt_until, or whose reserved uses reach max_uses, only decrypts
-- (PCI DSS 3.7.4, 3.7.5); retired_at records when a newer version took over; destroying a key
-- erases its wrapped material and keeps the row as the inventory's tombstone (3.7.5).
-- `epoch` scopes `pan` keys to the month in which their tokens' retention ends ('persistent'
-- for stored credentials, '' for keys of other purposes and for keys made before version 2).
ALTER TABLE data_keys
  ADD COLUMN environment    text NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
  ADD COLUMN epoch          text NOT NULL DEFAULT '',
  ADD COLUMN algorithm      text NOT NULL DEFAULT 'AES-256-GCM',
  ADD COLUMN encrypt_until  timestamptz,
  ADD COLUMN max_uses       bigint,
  ADD COLUMN uses_reserved  bigint NOT NULL DEFAULT 0,
  ADD COLUMN retired_at     timestamptz,
  ADD COLUMN destroyed_at   timestamptz,
  ALTER COLUMN wrapped DROP NOT NULL;
UPDATE data_keys SET algorithm = 'HMAC-SHA256' WHERE purpose IN ('fingerprint', 'audit', 'apikey');
ALTER TABLE data_keys DROP CONSTRAINT data_keys_owner_purpose_version_key;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_version_key
  UNIQUE (owner, environment, purpose, epoch, version);
ALTER TABLE data_keys ADD CONSTRAINT data_keys_destroyed_erased
  CHECK ((destroyed_at IS NULL) = (wrapped IS NOT NULL));

-- Tokens: environment (test keys never see live tokens), persistence, and the fingerprint key.
-- Tokens made before version 2 had no retention policy: they are kept as persistent.
ALTER TABLE tokens
  ADD COLUMN environment         text NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
  ADD COLUMN persistent          boolean NOT NULL DEFAULT false,
  ADD COLUMN fingerprint_key_id  text REFERENCES data_keys (id);
UPDATE tokens SET persistent = true WHERE expires_at IS NULL;
UPDATE tokens t SET fingerprint_key_id = (
  SELECT k.id FROM data_keys k
  WHERE k.owner = t.tenant_id AND k.purpose = 'fingerprint' ORDER BY k.version DESC LIMIT 1);
ALTER TABLE tokens ALTER COLUMN fingerprint_key_id SET NOT NULL;
ALTER TABLE tokens ADD CONSTRAINT tokens_retention CHECK (persistent = (expires_at IS NULL));
CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tokens_dek ON tokens (dek_id);
CREATE INDEX tokens_fingerprint_key ON tokens (fingerprint_key_id);

-- Dual control (PCI DSS 3.6.1.2, 3.7.6): a key ceremony is proposed by one principal and
-- executed only when a different principal approves it before it expires.
CREATE TABLE key_ceremonies (
  id            text PRIMARY KEY,
  action        text NOT NULL CHECK (action IN ('kek.rotate', 'dek.destroy', 'custodians.rekey')),
  params        jsonb NOT NULL,
  state         text NOT NULL CHECK (state IN ('pending', 'executed', 'rejected', 'failed')),
  proposed_by   text NOT NULL,
  proposed_at   timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  decided_by    text,
  decided_at    timestamptz,
  CHECK (decided_by IS NULL OR decided_by <> proposed_by)
);

-- Resumable re-encryption (pan) and re-fingerprinting (fingerprint) jobs. Progress lives in the
-- tokens themselves (each row names its key); the job row records scope and counts.
CREATE TABLE key_rotation_jobs (
  id           text PRIMARY KEY,
  purpose      text NOT NULL CHECK (purpose IN ('pan', 'fingerprint')),
  tenant_id    text,
  state        text NOT NULL CHECK (state IN ('running', 'done')),
  total        bigint NOT NULL,
  done         bigint NOT NULL DEFAULT 0,
  -- Tokens the last run could not decrypt (left on their key, counted in the audit events): not retried by the
  -- scheduled job until more tokens go stale.
  failed       bigint NOT NULL DEFAULT 0,
  started_by   text NOT NULL,
  started_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  finished_at  timestamptz
);

-- Each purge run (CLI or the server's scheduled job), for the retention report (PCI DSS 3.2.1).
CREATE TABLE purge_runs (
  id              text PRIMARY KEY,
  actor           text NOT NULL,
  ran_at          timestamptz NOT NULL,
  tokens_purged   bigint NOT NULL,
  keys_destroyed  integer NOT NULL
);
