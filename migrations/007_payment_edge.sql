-- The payment edge (docs/forwarding.md, docs/webhooks.md): forward-proxy allowlists, webhook
-- intake endpoints and their event queue, and merchants' event destinations with their deliveries.

-- Webhook signing secrets (intake and outbound) are sealed under a tenant DEK of their own.
ALTER TABLE data_keys DROP CONSTRAINT data_keys_purpose_check;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_purpose_check
  CHECK (purpose IN ('pan', 'sad', 'fingerprint', 'audit', 'apikey', 'jose', 'totp', 'authn', 'webhook'));

-- Where a tenant's forwarded requests may go: an exact host (and port) and a path prefix, HTTPS
-- only (PCI DSS 1.3.2, 4.2.1). No wildcards: each processor endpoint is listed.
CREATE TABLE forward_destinations (
  id           text PRIMARY KEY,
  tenant_id    text NOT NULL REFERENCES tenants (id),
  host         text NOT NULL,
  path_prefix  text NOT NULL,
  created_at   timestamptz NOT NULL,
  created_by   text NOT NULL,
  UNIQUE (tenant_id, host, path_prefix)
);

-- Intake endpoints, one per provider account: the signing secrets are one envelope (a JSON list,
-- several during a rotation's overlap) under the tenant's `webhook` DEK; `settings` holds what is
-- not secret (the generic HMAC scheme, PayPal's webhook id and certificates).
CREATE TABLE webhook_endpoints (
  id           text PRIMARY KEY,
  tenant_id    text NOT NULL REFERENCES tenants (id),
  provider     text NOT NULL CHECK (provider IN ('stripe', 'standard', 'paypal', 'hmac')),
  description  text NOT NULL DEFAULT '',
  settings     jsonb NOT NULL,
  secrets      bytea,
  dek_id       text,
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at   timestamptz NOT NULL,
  created_by   text NOT NULL,
  updated_at   timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at, id);

-- Received events: metadata only (never the body), one row per provider event id and endpoint
-- (a replay is acknowledged and not queued again), and the row is its own queue entry:
-- queued -> processing -> done, or dead after the last failed attempt (the dead-letter queue).
CREATE TABLE webhook_events (
  id                 text PRIMARY KEY,
  tenant_id          text NOT NULL REFERENCES tenants (id),
  endpoint_id        text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
  provider           text NOT NULL,
  provider_event_id  text NOT NULL,
  event_type         text NOT NULL,
  metadata           jsonb NOT NULL,
  received_at        timestamptz NOT NULL,
  state              text NOT NULL CHECK (state IN ('queued', 'processing', 'done', 'dead')),
  attempts           integer NOT NULL DEFAULT 0,
  run_at             timestamptz NOT NULL,
  locked_until       timestamptz,
  last_error         text,
  finished_at        timestamptz,
  UNIQUE (endpoint_id, provider_event_id)
);
CREATE INDEX webhook_events_due ON webhook_events (run_at) WHERE state IN ('queued', 'processing');
CREATE INDEX webhook_events_tenant ON webhook_events (tenant_id, received_at, id);
CREATE INDEX webhook_events_dead ON webhook_events (tenant_id, finished_at) WHERE state = 'dead';

-- Merchants' endpoints for the vault's own events (token and payment events), signed in the
-- Standard Webhooks format with a `whsec_` secret sealed under the tenant's `webhook` DEK.
CREATE TABLE event_destinations (
  id           text PRIMARY KEY,
  tenant_id    text NOT NULL REFERENCES tenants (id),
  url          text NOT NULL,
  event_types  text[] NOT NULL,
  description  text NOT NULL DEFAULT '',
  secrets      bytea NOT NULL,
  dek_id       text NOT NULL,
  status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at   timestamptz NOT NULL,
  created_by   text NOT NULL,
  updated_at   timestamptz NOT NULL
);
CREATE INDEX event_destinations_tenant ON event_destinations (tenant_id, created_at, id);

-- One delivery per (destination, event): the same queue states as webhook_events.
CREATE TABLE event_deliveries (
  id              text PRIMARY KEY,
  tenant_id       text NOT NULL REFERENCES tenants (id),
  destination_id  text NOT NULL REFERENCES event_destinations (id) ON DELETE CASCADE,
  event_id        text NOT NULL,
  event_type      text NOT NULL,
  payload         jsonb NOT NULL,
  created_at      timestamptz NOT NULL,
  state           text NOT NULL CHECK (state IN ('queued', 'processing', 'done', 'dead')),
  attempts        integer NOT NULL DEFAULT 0,
  run_at          timestamptz NOT NULL,
  locked_until    timestamptz,
  last_error      text,
  last_status     integer,
  finished_at     timestamptz,
  UNIQUE (destination_id, event_id)
);
CREATE INDEX event_deliveries_due ON event_deliveries (run_at) WHERE state IN ('queued', 'processing');
CREATE INDEX event_deliveries_tenant ON event_deliveries (tenant_id, created_at, id);

-- Where the dispatcher of token events stands in the audit trail (the audit events are the
-- outbox: a token event exists exactly when its audited action committed).
CREATE TABLE event_dispatch_cursor (
  name       text PRIMARY KEY,
  last_txid  xid8 NOT NULL,
  last_id    text NOT NULL
);
