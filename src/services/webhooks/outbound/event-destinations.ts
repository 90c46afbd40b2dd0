import { newId } from "../../../crypto/random.js";
import { type FieldError, VaultError } from "../../../errors/registry.js";
import type { KeyRing } from "../../../keys/key-ring.js";
import type { VaultMetrics } from "../../../metrics/metrics.js";
import type { SafeFetch } from "../../../outbound/safe-fetch.js";
import { purgeDead, type RetryPolicy, replayDead } from "../../../queue/queue-table.js";
import type { Database, SqlClient } from "../../../store/database.js";
import {
  type DeliveryQuery,
  type DeliveryRow,
  deleteDestination,
  type EventDestinationRow,
  findDelivery,
  findDestination,
  insertDestination,
  listDeliveries,
  listDestinations,
  replaceDestinationSecrets,
} from "../../../store/event-destinations-repo.js";
import type { AuditTrail } from "../../audit/audit-trail.js";
import type { Clock } from "../../clock.js";
import type { Principal } from "../../principal.js";
import { assertBelowLimit } from "../../tenant-limits.js";
import { deliverDue } from "./delivery-worker.js";
import {
  DEFAULT_OVERLAP_SECONDS,
  MAX_OVERLAP_SECONDS,
  newSigningSecret,
  rotateSecrets,
  zeroizeSecrets,
} from "./destination-secrets.js";
import { checkDestinationUrl } from "./destination-url.js";
import { isSubscription } from "./event-catalogue.js";
import { publishEvents } from "./publisher.js";
import { openSecrets, sealSecrets } from "./sealed-secrets.js";
import { TokenEventDispatcher } from "./token-event-dispatcher.js";
import type { VaultEvent } from "./vault-event.js";

export type { VaultEvent } from "./vault-event.js";

export interface EventDestinationsDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  readonly safeFetch: SafeFetch;
  readonly metrics: VaultMetrics;
  readonly retry: RetryPolicy;
  /**
   * FOR TESTS AND DEMOS (PAYVAULT_OUTBOUND_ALLOW_LOOPBACK): lets a loopback IP or `localhost`
   * URL be registered, as the outbound client lets it be reached. Never on in production.
   */
  readonly allowLoopback?: boolean;
}

export interface NewDestination {
  readonly url: string;
  readonly eventTypes: readonly string[];
  readonly description?: string;
}

/** A destination and its new signing secret, `whsec_…`: returned once, never stored in clear. */
export interface DestinationWithSecret {
  readonly destination: EventDestinationRow;
  readonly secret: string;
}

/** Concurrent rotations retry the compare-and-set this many times before giving up. */
const ROTATE_ATTEMPTS = 3;

/**
 * Merchants' event destinations and the deliveries to them (docs/webhooks-outbound.md): every
 * call is scoped to the caller's tenant (another tenant's destination or delivery is a 404) and
 * every change is audited in the same transaction (PCI DSS 10.2.1.5, 10.2.2).
 */
export class EventDestinations {
  private readonly dispatcher: TokenEventDispatcher;

  constructor(readonly deps: EventDestinationsDeps) {
    this.dispatcher = new TokenEventDispatcher(deps.db, deps.clock);
  }

  /** Registers a destination; the response carries its signing secret, the only time it is shown. */
  async create(principal: Principal, input: NewDestination): Promise<DestinationWithSecret> {
    const eventTypes = this.checkInput(input);
    await assertBelowLimit(this.deps.db, "event_destinations", principal.tenantId);
    const id = newId("evd");
    const { secret, serialized } = newSigningSecret();
    const sealed = await sealSecrets(this.deps.keys, principal.tenantId, id, [secret]).finally(() =>
      secret.key.zeroize(),
    );
    const now = this.deps.clock.now();
    const row: EventDestinationRow = {
      id,
      tenant_id: principal.tenantId,
      url: input.url,
      event_types: eventTypes,
      description: input.description ?? "",
      secrets: sealed.secrets,
      dek_id: sealed.dekId,
      status: "active",
      created_at: now,
      created_by: principal.keyId,
      updated_at: now,
    };
    await this.deps.db.transaction(async (tx) => {
      await insertDestination(tx, row);
      await this.audited(tx, principal, "event_destination.create", id, {
        host: new URL(input.url).host,
        event_types: eventTypes.join(" "),
      });
    });
    return { destination: row, secret: serialized };
  }

  list(principal: Principal): Promise<EventDestinationRow[]> {
    return listDestinations(this.deps.db, principal.tenantId);
  }

  async get(principal: Principal, id: string): Promise<EventDestinationRow> {
    const row = await findDestination(this.deps.db, principal.tenantId, id);
    if (row === undefined) throw new VaultError("EVENT_DESTINATION_NOT_FOUND");
    return row;
  }

  /**
   * A new signing secret, shown once; the previous ones keep signing (each delivery carries a
   * signature per live secret) until `overlapSeconds` from now (default 1 day, at most 7).
   */
  async rotateSecret(
    principal: Principal,
    id: string,
    overlapSeconds: number = DEFAULT_OVERLAP_SECONDS,
  ): Promise<DestinationWithSecret & { readonly previousExpiresAt: Date }> {
    if (!Number.isSafeInteger(overlapSeconds) || overlapSeconds < 0) {
      throw new RangeError("overlap_seconds is a whole number of seconds");
    }
    const overlap = Math.min(overlapSeconds, MAX_OVERLAP_SECONDS);
    for (let attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
      const row = await this.get(principal, id);
      const current = await openSecrets(this.deps.keys, row);
      const { secret, serialized } = newSigningSecret();
      const now = this.deps.clock.now();
      const rotated = rotateSecrets(current, secret, now, overlap);
      const sealed = await sealSecrets(this.deps.keys, row.tenant_id, id, rotated.secrets).finally(
        () => {
          zeroizeSecrets(current);
          secret.key.zeroize();
        },
      );
      const replaced = await this.deps.db.transaction(async (tx) => {
        const next = { secrets: sealed.secrets, dekId: sealed.dekId, at: now };
        if (
          !(await replaceDestinationSecrets(tx, { tenantId: row.tenant_id, id }, row.secrets, next))
        )
          return false;
        await this.audited(tx, principal, "event_destination.rotate", id, {
          overlap_seconds: overlap,
        });
        return true;
      });
      if (replaced) {
        const destination = {
          ...row,
          secrets: sealed.secrets,
          dek_id: sealed.dekId,
          updated_at: now,
        };
        return { destination, secret: serialized, previousExpiresAt: rotated.previousExpiresAt };
      }
    }
    throw new VaultError("INTERNAL_ERROR", { detail: "The secret changed during the rotation." });
  }

  /** Deletes a destination and all its deliveries (queued ones are never sent). */
  async remove(principal: Principal, id: string): Promise<void> {
    await this.deps.db.transaction(async (tx) => {
      const deleted = await deleteDestination(tx, principal.tenantId, id);
      if (deleted === undefined) throw new VaultError("EVENT_DESTINATION_NOT_FOUND");
      await this.audited(tx, principal, "event_destination.delete", id, {
        deliveries: deleted.deliveries,
      });
    });
  }

  listDeliveries(
    principal: Principal,
    query: Omit<DeliveryQuery, "tenantId">,
  ): Promise<DeliveryRow[]> {
    return listDeliveries(this.deps.db, { ...query, tenantId: principal.tenantId });
  }

  /** Queues a dead-lettered delivery again (attempts reset); the next pass sends it. */
  async replayDelivery(principal: Principal, id: string): Promise<DeliveryRow> {
    await this.onDeadLetter(principal, id, "event_delivery.replay", (tx) =>
      replayDead(tx, "event_deliveries", principal.tenantId, id, this.deps.clock.now()),
    );
    return (await findDelivery(this.deps.db, principal.tenantId, id)) as DeliveryRow;
  }

  /** Deletes a dead-lettered delivery. */
  async purgeDelivery(principal: Principal, id: string): Promise<void> {
    await this.onDeadLetter(principal, id, "event_delivery.purge", (tx) =>
      purgeDead(tx, "event_deliveries", principal.tenantId, id),
    );
  }

  /** Queues a delivery of `event` to each of the tenant's active destinations subscribed to its type. */
  async publish(tx: SqlClient, event: VaultEvent): Promise<number> {
    return publishEvents(tx, [event], this.deps.clock.now());
  }

  /** `publish` for many events at once: one read of the destinations, one INSERT. */
  async publishAll(tx: SqlClient, events: readonly VaultEvent[]): Promise<number> {
    return publishEvents(tx, events, this.deps.clock.now());
  }

  /** One pass of the delivery worker: claim due deliveries, send them; returns how many it took. */
  async deliverDue(limit = 32): Promise<number> {
    return deliverDue(this.deps, limit);
  }

  /** One pass of the token-event dispatcher (audit trail -> deliveries); returns how many events. */
  async dispatchTokenEvents(limit = 500): Promise<number> {
    return this.dispatcher.dispatch(limit);
  }

  private checkInput(input: NewDestination): string[] {
    const errors: FieldError[] = [];
    const url = checkDestinationUrl(input.url, this.deps.allowLoopback === true);
    if (!url.ok) errors.push({ field: "url", code: url.code, message: url.message });
    input.eventTypes.forEach((type, i) => {
      if (!isSubscription(type)) {
        errors.push({
          field: `event_types.${i}`,
          code: "EVENT_TYPE_UNKNOWN",
          message: "Not an event type of the catalogue, `payment.*` or `*`.",
        });
      }
    });
    if (errors.length > 0) throw new VaultError("VALIDATION_FAILED", { errors });
    return [...new Set(input.eventTypes)];
  }

  private async onDeadLetter(
    principal: Principal,
    id: string,
    action: "event_delivery.replay" | "event_delivery.purge",
    change: (tx: SqlClient) => Promise<boolean>,
  ): Promise<void> {
    await this.deps.db.transaction(async (tx) => {
      const delivery = await findDelivery(tx, principal.tenantId, id);
      if (delivery === undefined) throw new VaultError("EVENT_DELIVERY_NOT_FOUND");
      if (!(await change(tx))) throw new VaultError("NOT_DEAD_LETTERED");
      await this.audited(tx, principal, action, id, { destination_id: delivery.destination_id });
    });
  }

  private audited(
    tx: SqlClient,
    principal: Principal,
    action:
      | "event_destination.create"
      | "event_destination.rotate"
      | "event_destination.delete"
      | "event_delivery.replay"
      | "event_delivery.purge",
    objectId: string,
    details: Readonly<Record<string, string | number>>,
  ): Promise<void> {
    return this.deps.audit.record(tx, {
      tenantId: principal.tenantId,
      actor: principal.keyId,
      action,
      objectId,
      outcome: "success",
      details,
    });
  }
}
