-- Admin users (issue 5 point 3; docs/admin-auth.md): people who log in to the admin API with a
-- password and a TOTP code, and hold scopes expanded from roles when they were created.

-- `totp` DEKs (owner 'system') seal TOTP secrets (PCI DSS 8.3.2: the server needs the secret, so
-- it is encrypted, not hashed); the `authn` key MACs refresh tokens, enrollment tokens and
-- recovery codes, which are stored only as keyed HMACs.
ALTER TABLE data_keys DROP CONSTRAINT data_keys_purpose_check;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_purpose_check
  CHECK (purpose IN ('pan', 'sad', 'fingerprint', 'audit', 'apikey', 'jose', 'totp', 'authn'));

CREATE TABLE admin_users (
  id                   text PRIMARY KEY,
  tenant_id            text NOT NULL REFERENCES tenants (id),
  -- NFKC-normalised and lower-cased by the code, so one index makes it case-insensitive unique.
  username             text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._@+-]{2,63}$'),
  -- Roles are shown; scopes (expanded from them at creation) are what the user holds.
  roles                text[] NOT NULL,
  scopes               text[] NOT NULL,
  -- scrypt, `$scrypt$ln=17,r=8,p=1$…` (src/auth/passwords.ts); NULL until enrolment.
  password_hash        text,
  password_changed_at  timestamptz,
  -- Envelope sealed by a system `totp` DEK, bound to the user id; NULL until enrolment.
  totp_secret          bytea,
  -- The step of the last TOTP code accepted: a code is never accepted twice (PCI DSS 8.5.1).
  totp_last_step       bigint,
  -- PCI DSS 8.3.4: 10 consecutive failures lock the account for 30 minutes.
  failed_attempts      integer NOT NULL DEFAULT 0,
  locked_until         timestamptz,
  enrolled_at          timestamptz,
  disabled_at          timestamptz,
  created_at           timestamptz NOT NULL,
  created_by           text NOT NULL
);
CREATE UNIQUE INDEX admin_users_username ON admin_users (username);
CREATE INDEX admin_users_tenant ON admin_users (tenant_id);

-- PCI DSS 8.3.7: a new password may not be one of the last four (the current one included).
CREATE TABLE admin_password_history (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id        text NOT NULL REFERENCES admin_users (id),
  password_hash  text NOT NULL,
  set_at         timestamptz NOT NULL
);
CREATE INDEX admin_password_history_user ON admin_password_history (user_id, id);

-- Single-use recovery codes: HMAC-SHA-256 under the `authn` key, bound to the user id.
CREATE TABLE admin_recovery_codes (
  user_id   text NOT NULL REFERENCES admin_users (id),
  code_mac  text NOT NULL,
  used_at   timestamptz,
  PRIMARY KEY (user_id, code_mac)
);

-- A session is one login: the family of the refresh tokens issued from it. Revoking it ends
-- every access and refresh token of the family (logout, refresh-token reuse, disable, password
-- change, idle timeout).
CREATE TABLE admin_sessions (
  id             text PRIMARY KEY,
  user_id        text NOT NULL REFERENCES admin_users (id),
  environment    text NOT NULL CHECK (environment IN ('live', 'test')),
  ip             text NOT NULL,
  created_at     timestamptz NOT NULL,
  -- PCI DSS 8.2.8: idle for more than 15 minutes ends the session.
  last_seen_at   timestamptz NOT NULL,
  -- When the session last proved a second factor (login or step-up).
  mfa_at         timestamptz NOT NULL,
  revoked_at     timestamptz,
  revoke_reason  text CHECK (
    revoke_reason IN ('logout', 'refresh_reuse', 'disabled', 'password_change', 'idle')
  ),
  CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
CREATE INDEX admin_sessions_user ON admin_sessions (user_id) WHERE revoked_at IS NULL;

-- Rotating refresh tokens: each one is used once; a used one presented again revokes its session.
CREATE TABLE admin_refresh_tokens (
  id          text PRIMARY KEY,
  session_id  text NOT NULL REFERENCES admin_sessions (id),
  token_mac   bytea NOT NULL,
  issued_at   timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
CREATE INDEX admin_refresh_tokens_session ON admin_refresh_tokens (session_id);

-- One-time enrollment tokens handed to a new user: MAC only, 24 h, single use.
CREATE TABLE admin_enrollment_tokens (
  id          text PRIMARY KEY,
  user_id     text NOT NULL REFERENCES admin_users (id),
  token_mac   bytea NOT NULL,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
CREATE INDEX admin_enrollment_tokens_user ON admin_enrollment_tokens (user_id);
