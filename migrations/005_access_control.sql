-- Access control (docs/access-control.md): the API-key lifecycle and the scopes of issue 5.

-- The retired `admin` scope held every tenant scope; it becomes the tenant_admin role's scopes
-- plus the card-data scopes it used to imply, so no existing key loses a right by upgrading.
UPDATE api_keys
   SET scopes = ARRAY(
         SELECT DISTINCT s FROM unnest(
           array_remove(scopes, 'admin') || ARRAY[
             'tokens:write', 'tokens:read', 'tokens:reveal', 'tokens:delete', 'capture',
             'proxy:forward', 'webhooks:manage', 'audit:read', 'keys:manage', 'tenant:admin'
           ]) AS s ORDER BY s)
 WHERE 'admin' = ANY (scopes);

-- Optional expiry; allowed client address ranges (CIDR, empty = any); an optional binding to a
-- client certificate (SHA-256 of its DER, lowercase hex); usage counters flushed in batches; and
-- the successor a rotation created (the old key then expires when the overlap ends).
ALTER TABLE api_keys
  ADD COLUMN expires_at         timestamptz,
  ADD COLUMN allowed_cidrs      text[] NOT NULL DEFAULT '{}',
  ADD COLUMN client_cert_sha256 text CHECK (client_cert_sha256 ~ '^[0-9a-f]{64}$'),
  ADD COLUMN last_used_at       timestamptz,
  ADD COLUMN use_count          bigint NOT NULL DEFAULT 0,
  ADD COLUMN rotated_to         text REFERENCES api_keys (id),
  ADD COLUMN created_by         text;

-- A tenant's audit events by time, for GET /v1/audit/events (audit:read, PCI DSS 10.2, 10.4).
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at, id);
