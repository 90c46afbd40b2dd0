import type { AuditEventInput } from "../../audit/audit-event.js";
import { newId } from "../../crypto/random.js";
import { VaultError } from "../../errors/registry.js";
import {
  type AllowedDestination,
  compileAllowlist,
  InvalidAllowlistEntry,
} from "../../outbound/destination.js";
import type { Database } from "../../store/database.js";
import {
  deleteDestinationAudited,
  type ForwardDestinationRow,
  insertDestinationAudited,
  listDestinations,
} from "../../store/forward-repo.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../principal.js";
import { assertBelowLimit } from "../tenant-limits.js";

export interface NewForwardDestination {
  /** An exact host name or IP literal, optionally `:port` (443 when absent). */
  readonly host: string;
  /** A normalized absolute path: `/v1/charges` admits `/v1/charges` and `/v1/charges/…`. */
  readonly path_prefix: string;
}

const HTTPS_PORT = 443;
const BRACKETED = /^\[([^\]]+)\](?::(\d{1,5}))?$/;
const PLAIN = /^([^:[\]]+)(?::(\d{1,5}))?$/;

/** `host[:port]` → host and port; undefined for anything else (a path, userinfo, `::1` unbracketed). */
function splitHostPort(text: string): { host: string; port: number | undefined } | undefined {
  const match = BRACKETED.exec(text) ?? PLAIN.exec(text);
  if (match === null) return undefined;
  const bracketed = text.startsWith("[");
  const host = bracketed ? `[${match[1]}]` : (match[1] ?? "");
  return { host, port: match[2] === undefined ? undefined : Number(match[2]) };
}

/** The stored form: the normalized host, `[…]` around IPv6, `:port` unless 443. */
function storedHost(entry: AllowedDestination): string {
  const host = entry.host.includes(":") ? `[${entry.host}]` : entry.host;
  return entry.port === HTTPS_PORT ? host : `${host}:${entry.port}`;
}

function invalid(field: "host" | "path_prefix"): VaultError {
  const message =
    field === "host"
      ? "An exact host name or IP address, optionally with :port; no scheme, path or wildcard."
      : "A normalized absolute path such as /v1/charges.";
  return new VaultError("VALIDATION_FAILED", {
    errors: [{ field, code: "INVALID_VALUE", message }],
  });
}

/**
 * Compiles one entry with the outbound client's own rules (docs/outbound.md: exact hosts, no
 * wildcards, HTTPS only, normalized prefixes), so what is stored is what requests are checked
 * against.
 */
export function compileDestination(input: NewForwardDestination): AllowedDestination {
  const split = splitHostPort(input.host);
  if (split === undefined) throw invalid("host");
  try {
    const [entry] = compileAllowlist([
      {
        host: split.host,
        pathPrefix: input.path_prefix,
        ...(split.port === undefined ? {} : { port: split.port }),
      },
    ]);
    if (entry === undefined) throw invalid("host");
    return entry;
  } catch (err) {
    if (!(err instanceof InvalidAllowlistEntry)) throw err;
    throw invalid(err.field === "pathPrefix" ? "path_prefix" : "host");
  }
}

/** A stored row back to an allowlist entry (rows were compiled when written). */
function entryOf(row: ForwardDestinationRow): AllowedDestination | undefined {
  try {
    return compileDestination({ host: row.host, path_prefix: row.path_prefix });
  } catch {
    return undefined;
  }
}

/**
 * A tenant's forward allowlist (PCI DSS 1.3.2, 1.4.2: outbound traffic from the cardholder data
 * environment only to what is authorized): add, list and remove entries, each change audited in
 * the statement that makes it (PCI DSS 10.2.1.2, 10.2.2).
 */
/**
 * How long a tenant's allowlist is reused before it is read again: a forward then costs one
 * database round trip less. A removal takes effect at once on the node that made it and within
 * this time on the others (as an API-key revocation does within its 2 s cache).
 */
export const ALLOWLIST_CACHE_MS = 1_000;
const MAX_CACHED_TENANTS = 10_000;

export class ForwardDestinations {
  /** Tenant → its compiled allowlist and until when it may be reused (ms since the epoch). */
  private readonly cached = new Map<
    string,
    { readonly until: number; readonly entries: readonly AllowedDestination[] }
  >();
  /** Bumped by every change on this node: a read that began before a change is not cached. */
  private generation = 0;

  constructor(
    private readonly db: Database,
    private readonly audit: AuditTrail,
    private readonly clock: Clock,
  ) {}

  async add(principal: Principal, input: NewForwardDestination): Promise<ForwardDestinationRow> {
    const entry = compileDestination(input);
    await assertBelowLimit(this.db, "forward_destinations", principal.tenantId);
    const row: ForwardDestinationRow = {
      id: newId("fwd"),
      tenant_id: principal.tenantId,
      host: storedHost(entry),
      path_prefix: entry.pathPrefix,
      created_at: this.clock.now(),
      created_by: principal.keyId,
    };
    const event = await this.audit.build(
      this.event(principal, "forward_destination.create", row.id, {
        host: row.host,
        path_prefix: row.path_prefix,
      }),
    );
    const added = await guard(insertDestinationAudited(this.db, row, event));
    if (!added) throw new VaultError("FORWARD_DESTINATION_EXISTS");
    this.generation += 1;
    this.cached.delete(principal.tenantId);
    return row;
  }

  list(principal: Principal): Promise<ForwardDestinationRow[]> {
    return guard(listDestinations(this.db, principal.tenantId));
  }

  async remove(principal: Principal, id: string): Promise<void> {
    const event = await this.audit.build(
      this.event(principal, "forward_destination.delete", id, {}),
    );
    const removed = await guard(deleteDestinationAudited(this.db, principal.tenantId, id, event));
    // Dropped here at once; another node's copy lapses within ALLOWLIST_CACHE_MS.
    this.generation += 1;
    this.cached.delete(principal.tenantId);
    if (!removed) throw new VaultError("FORWARD_DESTINATION_NOT_FOUND");
  }

  /** The tenant's allowlist as checked on every forward (cached ALLOWLIST_CACHE_MS). */
  async allowlistOf(tenantId: string): Promise<readonly AllowedDestination[]> {
    const now = Date.now();
    const hit = this.cached.get(tenantId);
    if (hit !== undefined && hit.until > now) return hit.entries;
    const generation = this.generation;
    const rows = await guard(listDestinations(this.db, tenantId));
    const entries = rows.flatMap((row) => entryOf(row) ?? []);
    // Not cached when a change on this node may have raced the read (a deletion must not come
    // back from a read that started before it), nor when empty (a destination just added on
    // another node is then seen at the next forward).
    if (generation === this.generation && entries.length > 0) {
      if (this.cached.size >= MAX_CACHED_TENANTS) this.cached.clear();
      this.cached.set(tenantId, { until: now + ALLOWLIST_CACHE_MS, entries });
    }
    return entries;
  }

  private event(
    principal: Principal,
    action: AuditEventInput["action"],
    objectId: string,
    details: AuditEventInput["details"],
  ): AuditEventInput {
    return {
      tenantId: principal.tenantId,
      actor: principal.keyId,
      action,
      objectId,
      outcome: "success",
      details,
    };
  }
}

/** A store failure becomes a 503 whose text says nothing of the cause. */
export async function guard<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (err) {
    if (err instanceof VaultError) throw err;
    throw new VaultError("STORE_UNAVAILABLE", { cause: err });
  }
}
