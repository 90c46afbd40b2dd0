import { createHash } from "node:crypto";
import type { AuditAction } from "../../audit/audit-event.js";
import { openEnvelope, sealEnvelope } from "../../crypto/envelope.js";
import { newId } from "../../crypto/random.js";
import { zeroize } from "../../crypto/secret.js";
import type { ReplayGuard } from "../../ephemeral/replay-guard.js";
import type { FieldError } from "../../errors/registry.js";
import { VaultError } from "../../errors/registry.js";
import type { KeyRing } from "../../keys/key-ring.js";
import type { VaultMetrics } from "../../metrics/metrics.js";
import type { QueueState, RetryPolicy } from "../../queue/queue-table.js";
import {
  claimDue,
  complete,
  completeAll,
  fail,
  purgeDead,
  replayDead,
} from "../../queue/queue-table.js";
import { insertAuditEvent } from "../../store/audit-repo.js";
import type { Database, SqlClient } from "../../store/database.js";
import type { WebhookEndpointRow, WebhookProvider } from "../../store/webhook-endpoints-repo.js";
import {
  deleteWebhookEndpoint,
  findWebhookEndpoint,
  insertWebhookEndpoint,
  listWebhookEndpoints,
  replaceWebhookSecrets,
} from "../../store/webhook-endpoints-repo.js";
import type { WebhookEventRow } from "../../store/webhook-events-repo.js";
import {
  findWebhookEvent,
  listWebhookEvents,
  WEBHOOK_EVENT_COLUMNS,
} from "../../store/webhook-events-repo.js";
import type {
  WebhookHeaders,
  WebhookRejectReason,
} from "../../webhooks/signatures/verification.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../principal.js";
import { assertBelowLimit } from "../tenant-limits.js";
import type { EndpointSettings, EndpointVerifier, StoredSecret } from "./endpoint-config.js";
import {
  endpointVerifier,
  liveSecrets,
  secretIssue,
  settingsIssues,
  TOLERANCE_SECONDS,
} from "./endpoint-config.js";
import { eventMetadata, refuseCardData } from "./event-metadata.js";
import { IntakeBatcher } from "./intake-batcher.js";
import { paymentEventType } from "./outbound/event-catalogue.js";
import type { EventDestinations, VaultEvent } from "./outbound/event-destinations.js";

export interface WebhookServiceDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  readonly metrics: VaultMetrics;
  readonly events: EventDestinations;
  readonly retry: RetryPolicy;
  readonly maxBodyBytes: number;
  /** One use per PayPal transmission (memory, or Redis shared by every node). */
  readonly replay: ReplayGuard;
  /** How long an endpoint's verifier is reused before it is read again (rotations show within it). */
  readonly endpointCacheMs?: number;
}

export interface CreateEndpointInput {
  readonly provider: WebhookProvider;
  readonly description?: string;
  readonly secret?: string;
  readonly settings: EndpointSettings;
}

/** An endpoint as the API shows it: never a secret, only when each one stops verifying. */
export interface EndpointView {
  readonly id: string;
  readonly provider: WebhookProvider;
  readonly description: string;
  readonly status: string;
  /** The path providers post to (the route prefixes the vault's origin). */
  readonly intake_path: string;
  readonly secrets: readonly { readonly created_at: string; readonly expires_at: string | null }[];
  readonly settings: EndpointSettings;
  readonly created_at: string;
  readonly updated_at: string;
}

export interface EventView {
  readonly id: string;
  readonly tenant_id: string;
  readonly endpoint_id: string;
  readonly provider: string;
  readonly provider_event_id: string;
  readonly type: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly state: QueueState;
  readonly attempts: number;
  readonly last_error: string | null;
  readonly received_at: string;
  readonly next_attempt_at: string | null;
  readonly finished_at: string | null;
}

export interface ReceiveResult {
  readonly id: string | undefined;
  readonly duplicate: boolean;
}

/**
 * Extra processing of a received event, inside the transaction that marks it done: a throw fails
 * the attempt (retried with backoff, then dead-lettered). The default processing publishes the
 * event to the tenant's event destinations as `payment.<provider type>`.
 */
export type EventHandler = (event: WebhookEventRow, tx: SqlClient) => Promise<void>;

/** A refused webhook: the error code, and the signature reason when the signature failed. */
export class WebhookRejected extends VaultError {
  constructor(
    code: ConstructorParameters<typeof VaultError>[0],
    readonly reason?: WebhookRejectReason,
  ) {
    super(code, reason === undefined ? {} : { detail: `reason: ${reason}` });
  }
}

interface CachedEndpoint {
  readonly tenantId: string;
  readonly provider: WebhookProvider;
  readonly settings: EndpointSettings;
  readonly verify: EndpointVerifier;
  readonly dispose: () => void;
  readonly until: number;
}

const MAX_OVERLAP_SECONDS = 7 * 86_400;
const DEFAULT_OVERLAP_SECONDS = 86_400;
const MAX_CACHED_ENDPOINTS = 10_000;
/** Live secrets an intake endpoint keeps: the current one and two still in their overlap. */
export const MAX_LIVE_SECRETS = 3;
const REJECTION_WINDOW_MS = 60_000;
/** How long a verifier (or the absence of an endpoint) is reused before it is read again. */
const DEFAULT_ENDPOINT_CACHE_MS = 2_000;

/**
 * Webhook intake (issue 6): endpoints with their secrets sealed under the tenant's `webhook` DEK,
 * signature verification on the raw bytes, the card-number refusal, deduplication by provider
 * event id, the queue (at-least-once processing with backoff) and its dead-letter queue.
 */
export class WebhookService {
  private readonly cache = new Map<string, CachedEndpoint | undefined>();
  private readonly rejections = new Map<string, { since: number; count: number }>();
  private readonly absent = new Map<string, number>();
  private readonly batcher: IntakeBatcher;
  private readonly handlers: EventHandler[] = [];
  private queuedListener: () => void = () => undefined;

  constructor(private readonly deps: WebhookServiceDeps) {
    this.batcher = new IntakeBatcher(deps.db, () => this.queuedListener());
  }

  /** Called when new events were queued (the worker wakes up instead of waiting). */
  onQueued(listener: () => void): void {
    this.queuedListener = listener;
  }

  /** Adds processing for every received event (runs before the event is published). */
  use(handler: EventHandler): void {
    this.handlers.push(handler);
  }

  get maxBodyBytes(): number {
    return this.deps.maxBodyBytes;
  }

  // --- endpoints ------------------------------------------------------------------------------

  async createEndpoint(principal: Principal, input: CreateEndpointInput): Promise<EndpointView> {
    const issues: FieldError[] = settingsIssues(input.provider, input.settings, this.deps.clock);
    if (input.provider === "paypal") {
      if (input.secret !== undefined) {
        issues.push({
          field: "secret",
          code: "UNKNOWN_FIELD",
          message: "PayPal signs with a certificate; give paypal.certificates instead",
        });
      }
    } else if (input.secret === undefined) {
      issues.push({ field: "secret", code: "FIELD_REQUIRED", message: "the signing secret" });
    } else {
      const issue = secretIssue(input.provider, input.secret);
      if (issue !== undefined) issues.push(issue);
    }
    if (issues.length > 0) throw new VaultError("VALIDATION_FAILED", { errors: issues });
    await assertBelowLimit(this.deps.db, "webhook_endpoints", principal.tenantId);
    const now = this.deps.clock.now();
    const id = newId("whe");
    const secrets: StoredSecret[] =
      input.secret === undefined ? [] : [{ value: input.secret, created_at: now.toISOString() }];
    const sealed =
      secrets.length === 0 ? undefined : await this.sealSecrets(principal.tenantId, id, secrets);
    const row: WebhookEndpointRow = {
      id,
      tenant_id: principal.tenantId,
      provider: input.provider,
      description: input.description ?? "",
      settings: { ...input.settings },
      secrets: sealed?.envelope ?? null,
      dek_id: sealed?.dekId ?? null,
      status: "active",
      created_at: now,
      created_by: principal.keyId,
      updated_at: now,
    };
    const event = await this.deps.audit.build(
      this.auditInput(principal, "webhook_endpoint.create", id, { provider: input.provider }),
    );
    await insertWebhookEndpoint(this.deps.db, row, event);
    return this.view(row, secrets);
  }

  async listEndpoints(principal: Principal): Promise<EndpointView[]> {
    const rows = await listWebhookEndpoints(this.deps.db, principal.tenantId);
    return Promise.all(rows.map(async (row) => this.view(row, await this.openSecrets(row))));
  }

  async getEndpoint(principal: Principal, id: string): Promise<EndpointView> {
    const row = await this.endpointOf(principal, id);
    return this.view(row, await this.openSecrets(row));
  }

  /**
   * Adds a new secret; the ones before it keep verifying for `overlapSeconds` (default one day,
   * 0 ends them at once), so the provider can switch without a window of refused deliveries.
   */
  async rotateSecret(
    principal: Principal,
    id: string,
    input: { secret: string; overlapSeconds?: number },
  ): Promise<EndpointView> {
    const row = await this.endpointOf(principal, id);
    if (row.provider === "paypal" || row.secrets === null) {
      throw new VaultError("VALIDATION_FAILED", {
        errors: [
          {
            field: "secret",
            code: "INVALID_VALUE",
            message: "PayPal endpoints have no secret; register a new certificate instead",
          },
        ],
      });
    }
    const issue = secretIssue(row.provider, input.secret);
    const overlap = input.overlapSeconds ?? DEFAULT_OVERLAP_SECONDS;
    if (issue !== undefined) throw new VaultError("VALIDATION_FAILED", { errors: [issue] });
    if (!Number.isInteger(overlap) || overlap < 0 || overlap > MAX_OVERLAP_SECONDS) {
      throw new VaultError("VALIDATION_FAILED", {
        errors: [
          {
            field: "overlap_seconds",
            code: "INVALID_VALUE",
            message: `must be 0 to ${MAX_OVERLAP_SECONDS}`,
          },
        ],
      });
    }
    const now = this.deps.clock.now();
    const end = new Date(now.getTime() + overlap * 1000).toISOString();
    const before = liveSecrets(await this.openSecrets(row), now);
    const fresh: StoredSecret = { value: input.secret, created_at: now.toISOString() };
    const secrets: StoredSecret[] = [
      fresh,
      ...before.map((s) => ({
        ...s,
        // A secret already ending sooner keeps its earlier end.
        not_after: s.not_after !== undefined && s.not_after < end ? s.not_after : end,
      })),
    ]
      .filter((s) => s.not_after === undefined || Date.parse(s.not_after) > now.getTime())
      // Each live secret costs an HMAC over the body for every forged request: keep a few.
      .slice(0, MAX_LIVE_SECRETS);
    const sealed = await this.sealSecrets(row.tenant_id, row.id, secrets);
    const event = await this.deps.audit.build(
      this.auditInput(principal, "webhook_endpoint.rotate", id, { overlap_seconds: overlap }),
    );
    const replaced = await replaceWebhookSecrets(
      this.deps.db,
      {
        id,
        tenantId: row.tenant_id,
        previous: row.secrets,
        secrets: sealed.envelope,
        dekId: sealed.dekId,
      },
      now,
      event,
    );
    if (!replaced) throw new VaultError("ROTATION_IN_PROGRESS");
    this.forget(id);
    return this.view({ ...row, updated_at: now }, secrets);
  }

  async deleteEndpoint(principal: Principal, id: string): Promise<void> {
    const event = await this.deps.audit.build(
      this.auditInput(principal, "webhook_endpoint.delete", id, {}),
    );
    if (!(await deleteWebhookEndpoint(this.deps.db, id, principal.tenantId, event))) {
      throw new VaultError("WEBHOOK_ENDPOINT_NOT_FOUND");
    }
    this.forget(id);
  }

  // --- intake ---------------------------------------------------------------------------------

  /**
   * One received webhook: the endpoint (404 if unknown, disabled or of another provider), the
   * signature over the raw bytes (401), the card-number refusal (422), the event's id and type
   * (400), then the queue. Nothing is written for a refused webhook except, for a bad signature
   * on a real endpoint, one audit event (PCI DSS 10.2.1.4: invalid access attempts).
   */
  async receive(
    provider: string,
    endpointId: string,
    rawBody: Buffer,
    headers: WebhookHeaders,
  ): Promise<ReceiveResult> {
    const endpoint = await this.cachedEndpoint(endpointId);
    if (endpoint === undefined || endpoint.provider !== provider) {
      throw new WebhookRejected("WEBHOOK_ENDPOINT_NOT_FOUND");
    }
    const verified = endpoint.verify(rawBody, headers);
    if (!verified.ok) {
      await this.auditRejection(endpoint.tenantId, endpointId, verified.reason);
      throw new WebhookRejected("WEBHOOK_SIGNATURE_INVALID", verified.reason);
    }
    const { transmission } = verified.value;
    if (
      transmission !== undefined &&
      !(await this.firstBodyOf(endpointId, transmission, rawBody))
    ) {
      await this.auditRejection(endpoint.tenantId, endpointId, "transmission_reused");
      throw new WebhookRejected("WEBHOOK_SIGNATURE_INVALID", "transmission_reused");
    }
    refuseCardData(rawBody);
    const meta = eventMetadata(
      endpoint.provider,
      endpoint.settings,
      rawBody,
      verified.value.headerEventId,
    );
    const id = newId("evt");
    const outcome = await this.batcher.add({
      id,
      tenantId: endpoint.tenantId,
      endpointId,
      provider: endpoint.provider,
      providerEventId: meta.providerEventId,
      eventType: meta.eventType,
      metadata: meta.metadata,
      receivedAt: this.deps.clock.now(),
    });
    if (outcome === "endpoint_gone") throw new WebhookRejected("WEBHOOK_ENDPOINT_NOT_FOUND");
    return outcome === "queued" ? { id, duplicate: false } : { id: undefined, duplicate: true };
  }

  /**
   * True unless this PayPal transmission was already used with a different body. The signature
   * covers the body only through its CRC-32, which can be matched for a forged body, so within
   * the tolerance a captured transmission could otherwise carry any event. The same body again
   * (a resend) passes, and is then acknowledged as a duplicate by its event id.
   */
  private async firstBodyOf(
    endpointId: string,
    transmission: { readonly id: string; readonly sentAtMs: number },
    rawBody: Buffer,
  ): Promise<boolean> {
    const until = new Date(transmission.sentAtMs + TOLERANCE_SECONDS * 1000);
    const namespace = `paypal.${endpointId}`;
    const digest = createHash("sha256").update(rawBody).digest("base64url");
    const first = await this.deps.replay.firstUse(namespace, transmission.id, until);
    const firstWithThisBody = await this.deps.replay.firstUse(
      namespace,
      `${transmission.id}:${digest}`,
      until,
    );
    return first || !firstWithThisBody;
  }

  /**
   * One `webhook.rejected` audit event per endpoint and reason per minute, carrying how many
   * refusals it stands for (PCI DSS 10.2.1.4). One row per forged request would let anyone who
   * knows an endpoint id fill the append-only trail; refusals are also counted in the metrics.
   */
  private async auditRejection(
    tenantId: string,
    endpointId: string,
    reason: string,
  ): Promise<void> {
    const key = `${endpointId}|${reason}`;
    const now = this.deps.clock.now().getTime();
    const window = this.rejections.get(key);
    if (window !== undefined && now - window.since < REJECTION_WINDOW_MS) {
      window.count += 1;
      return;
    }
    const suppressed = window?.count ?? 0;
    this.rejections.delete(key);
    if (this.rejections.size >= MAX_CACHED_ENDPOINTS) {
      const oldest = this.rejections.keys().next().value;
      if (oldest !== undefined) this.rejections.delete(oldest);
    }
    this.rejections.set(key, { since: now, count: 0 });
    await this.deps.audit
      .record(this.deps.db, {
        tenantId,
        actor: `webhook:${endpointId}`,
        action: "webhook.rejected",
        objectId: endpointId,
        outcome: "failure",
        // `also_refused`: the refusals of the previous window that had no event of their own.
        details: { reason, also_refused: suppressed },
      })
      .catch(() => undefined);
  }

  // --- events and the dead-letter queue -------------------------------------------------------

  async listEvents(
    principal: Principal,
    query: { state?: QueueState; endpointId?: string; after?: string; limit: number },
  ): Promise<EventView[]> {
    let after: { receivedAt: Date; id: string } | undefined;
    if (query.after !== undefined) {
      const cursor = await findWebhookEvent(this.deps.db, query.after, principal.tenantId);
      if (cursor === undefined) throw new VaultError("WEBHOOK_EVENT_NOT_FOUND");
      after = { receivedAt: cursor.received_at, id: cursor.id };
    }
    const rows = await listWebhookEvents(this.deps.db, {
      tenantId: principal.tenantId,
      limit: query.limit,
      ...(query.state === undefined ? {} : { state: query.state }),
      ...(query.endpointId === undefined ? {} : { endpointId: query.endpointId }),
      ...(after === undefined ? {} : { after }),
    });
    return rows.map(eventView);
  }

  async getEvent(principal: Principal, id: string): Promise<EventView> {
    const row = await findWebhookEvent(this.deps.db, id, principal.tenantId);
    if (row === undefined) throw new VaultError("WEBHOOK_EVENT_NOT_FOUND");
    return eventView(row);
  }

  /** Every tenant's dead events (the CLI), oldest first. */
  async deadEvents(tenantId: string | undefined, limit: number): Promise<EventView[]> {
    const rows = await listWebhookEvents(this.deps.db, { tenantId, state: "dead", limit });
    return rows.map(eventView);
  }

  /**
   * Queues a dead event again (attempts start over). `tenantId` undefined: the CLI, any tenant.
   * Audited with the actor; another tenant's event is "not found".
   */
  async replay(actor: Actor, id: string): Promise<EventView> {
    return this.deadLetterAction(actor, id, "webhook_event.replay", async (tx, tenantId) =>
      replayDead(tx, "webhook_events", tenantId, id, this.deps.clock.now()),
    );
  }

  /** Deletes a dead event (it will not be processed). */
  async purge(actor: Actor, id: string): Promise<EventView> {
    return this.deadLetterAction(actor, id, "webhook_event.purge", async (tx, tenantId) =>
      purgeDead(tx, "webhook_events", tenantId, id),
    );
  }

  private async deadLetterAction(
    actor: Actor,
    id: string,
    action: AuditAction,
    change: (tx: SqlClient, tenantId: string | undefined) => Promise<boolean>,
  ): Promise<EventView> {
    const row = await findWebhookEvent(this.deps.db, id, actor.tenantId);
    if (row === undefined) throw new VaultError("WEBHOOK_EVENT_NOT_FOUND");
    if (row.state !== "dead") throw new VaultError("NOT_DEAD_LETTERED");
    const event = await this.deps.audit.build({
      tenantId: row.tenant_id,
      actor: actor.name,
      action,
      objectId: id,
      outcome: "success",
      details: { endpoint: row.endpoint_id, type: row.event_type },
    });
    // The change and its audit event in one transaction: of two concurrent replays one changes
    // the row and is audited, the other is told 409 and leaves no trace of a change.
    const changed = await this.deps.db.transaction(async (tx) => {
      if (!(await change(tx, actor.tenantId))) return false;
      await insertAuditEvent(tx, event);
      return true;
    });
    if (!changed) throw new VaultError("NOT_DEAD_LETTERED");
    if (action === "webhook_event.replay") this.queuedListener();
    return eventView(
      action === "webhook_event.replay" ? { ...row, state: "queued", attempts: 0 } : row,
    );
  }

  /**
   * One pass of the processing worker: claims due events (queued, or processing with a lapsed
   * lease: at-least-once), runs the handlers and publishes each to the tenant's event
   * destinations in the transaction that marks it done; a failure is retried with exponential
   * backoff and, after the last attempt, the event is dead-lettered. Returns how many it took.
   */
  async processDue(limit = 128): Promise<number> {
    const now = this.deps.clock.now();
    const rows = await claimDue<WebhookEventRow>(
      this.deps.db,
      "webhook_events",
      WEBHOOK_EVENT_COLUMNS,
      now,
      limit,
      this.deps.retry.maxAttempts,
    );
    if (rows.length > 1) {
      // The claimed events in one transaction (one commit for the lot: processing keeps up with
      // the group-committed intake). If any fails, all roll back and each is tried alone below,
      // so only the failing one is retried; handlers may run twice, as at-least-once allows.
      try {
        await this.deps.db.transaction(async (tx) => {
          for (const row of rows) for (const handler of this.handlers) await handler(row, tx);
          await this.deps.events.publishAll(tx, rows.map(vaultEventOf));
          const done = await completeAll(tx, "webhook_events", rows, this.deps.clock.now());
          if (done !== rows.length) throw new LeaseLost();
        });
        this.deps.metrics.webhookProcessing.inc({ outcome: "done" }, rows.length);
        return rows.length;
      } catch {
        // Fall through to one transaction per event.
      }
    }
    for (const row of rows) {
      try {
        await this.deps.db.transaction((tx) => this.processOne(tx, row));
        this.deps.metrics.webhookProcessing.inc({ outcome: "done" });
      } catch (err) {
        if (err instanceof LeaseLost) continue;
        const outcome = await fail(
          this.deps.db,
          "webhook_events",
          row,
          failureCode(err),
          this.deps.clock.now(),
          this.deps.retry,
        );
        if (outcome !== undefined) {
          this.deps.metrics.webhookProcessing.inc({
            outcome: outcome.state === "dead" ? "dead" : "retry",
          });
        }
      }
    }
    return rows.length;
  }

  /** Handlers, publication and completion of one claimed event, inside `tx`. */
  private async processOne(tx: SqlClient, row: WebhookEventRow): Promise<void> {
    for (const handler of this.handlers) await handler(row, tx);
    await this.deps.events.publish(tx, vaultEventOf(row));
    if (!(await complete(tx, "webhook_events", row, this.deps.clock.now()))) {
      // Another worker took it after our lease ran out; its outcome stands.
      throw new LeaseLost();
    }
  }

  // --- internals ------------------------------------------------------------------------------

  private async endpointOf(principal: Principal, id: string): Promise<WebhookEndpointRow> {
    const row = await findWebhookEndpoint(this.deps.db, id, principal.tenantId);
    if (row === undefined) throw new VaultError("WEBHOOK_ENDPOINT_NOT_FOUND");
    return row;
  }

  private async cachedEndpoint(id: string): Promise<CachedEndpoint | undefined> {
    const now = Date.now();
    const ttl = this.deps.endpointCacheMs ?? DEFAULT_ENDPOINT_CACHE_MS;
    if (this.cache.has(id)) {
      const hit = this.cache.get(id);
      const absentUntil = this.absent.get(id) ?? 0;
      if (hit !== undefined && hit.until > now) return hit;
      if (hit === undefined && absentUntil > now) return undefined;
      this.forget(id);
    }
    if (!/^whe_[A-Za-z0-9]{1,64}$/.test(id)) return undefined;
    const row = await findWebhookEndpoint(this.deps.db, id);
    if (row === undefined || row.status !== "active") {
      // Remembered briefly too, so a flood of requests to unknown ids is not a query each.
      this.remember(id, undefined);
      this.absent.set(id, now + ttl);
      return undefined;
    }
    const secrets = await this.openSecrets(row);
    const { verify, dispose } = endpointVerifier(
      row.provider,
      row.settings as EndpointSettings,
      secrets,
      this.deps.clock,
    );
    const entry: CachedEndpoint = {
      tenantId: row.tenant_id,
      provider: row.provider,
      settings: row.settings as EndpointSettings,
      verify,
      dispose,
      until: now + ttl,
    };
    this.remember(id, entry);
    return entry;
  }

  private remember(id: string, entry: CachedEndpoint | undefined): void {
    // Two misses at once both build a verifier: the one replaced is disposed, not leaked.
    this.forget(id);
    if (this.cache.size >= MAX_CACHED_ENDPOINTS) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
    this.cache.set(id, entry);
  }

  private forget(id: string): void {
    const hit = this.cache.get(id);
    this.cache.delete(id);
    this.absent.delete(id);
    // Zeroed a little later: a request that already holds this verifier may still be using it.
    if (hit !== undefined) setTimeout(hit.dispose, 5_000).unref();
  }

  private async sealSecrets(
    tenantId: string,
    endpointId: string,
    secrets: readonly StoredSecret[],
  ): Promise<{ envelope: Buffer; dekId: string }> {
    const dek = await this.deps.keys.activeKey(
      { owner: tenantId, environment: "live", purpose: "webhook" },
      undefined,
      1,
    );
    const plaintext = Buffer.from(JSON.stringify(secrets), "utf8");
    try {
      const envelope = sealEnvelope({
        dekId: dek.id,
        key: dek.material,
        plaintext,
        context: { tenantId, objectId: `webhook_endpoint:${endpointId}`, purpose: "webhook" },
      });
      return { envelope, dekId: dek.id };
    } finally {
      zeroize(plaintext);
    }
  }

  private async openSecrets(row: WebhookEndpointRow): Promise<StoredSecret[]> {
    if (row.secrets === null || row.dek_id === null) return [];
    const dek = await this.deps.keys.keyById(row.dek_id, row.tenant_id, "webhook");
    const plaintext = openEnvelope(row.secrets, dek.material, {
      tenantId: row.tenant_id,
      objectId: `webhook_endpoint:${row.id}`,
      purpose: "webhook",
    });
    try {
      return JSON.parse(plaintext.toString("utf8")) as StoredSecret[];
    } finally {
      zeroize(plaintext);
    }
  }

  private view(row: WebhookEndpointRow, secrets: readonly StoredSecret[]): EndpointView {
    const now = this.deps.clock.now();
    return {
      id: row.id,
      provider: row.provider,
      description: row.description,
      status: row.status,
      intake_path: `/v1/webhooks/${row.provider}/${row.id}`,
      secrets: liveSecrets(secrets, now).map((s) => ({
        created_at: s.created_at,
        expires_at: s.not_after ?? null,
      })),
      settings: row.settings as EndpointSettings,
      created_at: row.created_at.toISOString(),
      updated_at: row.updated_at.toISOString(),
    };
  }

  private auditInput(
    principal: Principal,
    action: AuditAction,
    objectId: string,
    details: Readonly<Record<string, string | number | boolean>>,
  ) {
    return {
      tenantId: principal.tenantId,
      actor: principal.keyId,
      action,
      objectId,
      outcome: "success" as const,
      details,
    };
  }
}

/** Who acts on the dead-letter queue: an API principal (its tenant only) or the CLI (any). */
export interface Actor {
  readonly name: string;
  readonly tenantId: string | undefined;
}

class LeaseLost extends Error {}

/** A short, fixed code for `last_error`: never an error message, which could quote data. */
function failureCode(err: unknown): string {
  if (err instanceof VaultError) return err.code;
  if (err instanceof Error) return err.name === "Error" ? "PROCESSING_FAILED" : err.name;
  return "PROCESSING_FAILED";
}

/** A received event as the vault publishes it to the tenant's event destinations. */
function vaultEventOf(row: WebhookEventRow): VaultEvent {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    // Lower-cased and dot-separated (PayPal's PAYMENT.CAPTURE.COMPLETED too); a type that cannot
    // be one (too many segments) is still published, as payment.other.
    type: paymentEventType(row.event_type) ?? "payment.other",
    createdAt: row.received_at,
    data: {
      provider: row.provider,
      provider_event_id: row.provider_event_id,
      endpoint_id: row.endpoint_id,
      ...row.metadata,
    },
  };
}

function eventView(row: WebhookEventRow): EventView {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    endpoint_id: row.endpoint_id,
    provider: row.provider,
    provider_event_id: row.provider_event_id,
    type: row.event_type,
    metadata: row.metadata,
    state: row.state,
    attempts: row.attempts,
    last_error: row.last_error,
    received_at: row.received_at.toISOString(),
    next_attempt_at: row.state === "queued" ? row.run_at.toISOString() : null,
    finished_at: row.finished_at?.toISOString() ?? null,
  };
}
