-- Card capture (docs/capture.md): the vault's own JOSE keys and the keys tenants register.

-- `jose` DEKs (the vault's own, owner 'system') seal the JOSE private keys at rest.
ALTER TABLE data_keys DROP CONSTRAINT data_keys_purpose_check;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_purpose_check
  CHECK (purpose IN ('pan', 'sad', 'fingerprint', 'audit', 'apikey', 'jose'));

-- The vault's key pairs: capture encryption keys published at /v1/capture/jwks (use 'enc') and
-- the capture-session signing key (use 'sig'). The private key is PKCS#8 inside an envelope
-- sealed by a system `jose` DEK (itself wrapped by the KEK), bound to kid and alg; the public
-- key is derived from it when it loads (never stored apart from it). A retired key is no longer
-- handed out for new work but is still accepted until expires_at (rotation with overlap), then
-- deleted.
CREATE TABLE vault_jose_keys (
  kid          text PRIMARY KEY,
  use          text NOT NULL CHECK (use IN ('enc', 'sig')),
  alg          text NOT NULL,
  private_key  bytea NOT NULL,
  created_at   timestamptz NOT NULL,
  retired_at   timestamptz,
  expires_at   timestamptz,
  CHECK ((retired_at IS NULL) = (expires_at IS NULL))
);
-- At most one current key per algorithm: two nodes creating the first key at once agree.
CREATE UNIQUE INDEX vault_jose_keys_current ON vault_jose_keys (alg) WHERE retired_at IS NULL;

-- Public keys a tenant registers for server-to-server nested JWTs, per environment (pv_live_
-- and pv_test_ keys never share them): 'sig' keys verify the tenant's signed requests, an 'enc'
-- key receives responses encrypted to the tenant.
CREATE TABLE tenant_jose_keys (
  tenant_id    text NOT NULL REFERENCES tenants (id),
  environment  text NOT NULL CHECK (environment IN ('live', 'test')),
  kid          text NOT NULL,
  use          text NOT NULL CHECK (use IN ('sig', 'enc')),
  alg          text NOT NULL,
  jwk          jsonb NOT NULL,
  created_at   timestamptz NOT NULL,
  revoked_at   timestamptz,
  PRIMARY KEY (tenant_id, environment, kid)
);
