import { performance } from "node:perf_hooks";
import type { CvcStore } from "../../ephemeral/cvc-store.js";
import { VaultError } from "../../errors/registry.js";
import type { KeyRing } from "../../keys/key-ring.js";
import type { VaultMetrics } from "../../metrics/metrics.js";
import { checkDestination, type Destination } from "../../outbound/destination.js";
import type { SafeFetch } from "../../outbound/safe-fetch.js";
import type { Database } from "../../store/database.js";
import type { ForwardDestinationRow } from "../../store/forward-repo.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../principal.js";
import { forgetCards, type OpenCard, openCards, takeCvcs } from "./card-values.js";
import { ForwardDestinations, type NewForwardDestination } from "./forward-destinations.js";
import {
  compileForwardTemplate,
  declaredHeaders,
  type ForwardContentType,
  type ForwardMethod,
  renderBody,
  renderHeaders,
} from "./forward-template.js";
import { forwardErrorOf } from "./outbound-errors.js";
import { type RelayedResponse, relayResponse } from "./processor-response.js";

export interface ForwardDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  readonly cvcs: CvcStore;
  readonly safeFetch: SafeFetch;
  readonly metrics: VaultMetrics;
}

/** POST /v1/forward's body (docs/forwarding.md). */
export interface ForwardRequest {
  readonly url: string;
  readonly method?: ForwardMethod;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  readonly content_type?: ForwardContentType;
  readonly timeout_ms?: number;
}

/** The one line logged per forward: ids, host, outcome and time, never a body or header. */
export interface ForwardLog {
  info(fields: Record<string, unknown>, message: string): void;
}

const statusClass = (status: number): string => `${Math.floor(status / 100)}xx`;

/**
 * The forward proxy (issue 6; docs/forwarding.md): the merchant sends a request template naming
 * token fields, the vault fills in the card and sends it to an allowlisted processor over
 * verified HTTPS, and relays the answer with card numbers masked. The merchant's systems never
 * hold the card (PCI DSS scope reduction), and the order of the checks keeps card data untouched
 * until the request is known to be well formed and bound for an allowed destination.
 */
export class ForwardService {
  readonly destinations: ForwardDestinations;

  constructor(readonly deps: ForwardDeps) {
    this.destinations = new ForwardDestinations(deps.db, deps.audit, deps.clock);
  }

  addDestination(
    principal: Principal,
    input: NewForwardDestination,
  ): Promise<ForwardDestinationRow> {
    return this.destinations.add(principal, input);
  }

  listDestinations(principal: Principal): Promise<ForwardDestinationRow[]> {
    return this.destinations.list(principal);
  }

  removeDestination(principal: Principal, id: string): Promise<void> {
    return this.destinations.remove(principal, id);
  }

  async forward(
    principal: Principal,
    request: ForwardRequest,
    logger?: ForwardLog,
  ): Promise<RelayedResponse> {
    const started = performance.now();
    let outcome = "INTERNAL_ERROR";
    let host: string | undefined;
    try {
      const relayed = await this.run(principal, request, (d) => {
        host = d.host;
      });
      outcome = statusClass(relayed.status);
      return relayed;
    } catch (err) {
      outcome = err instanceof VaultError ? err.code : "INTERNAL_ERROR";
      throw err;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.deps.metrics.forwardRequests.inc({ outcome });
      this.deps.metrics.forwardDuration.observe({ outcome }, seconds);
      logger?.info(
        {
          tenant_id: principal.tenantId,
          key_id: principal.keyId,
          destination_host: host ?? null,
          outcome,
          duration_ms: Math.round(seconds * 1e4) / 10,
        },
        "forward",
      );
    }
  }

  /**
   * The order of the checks (docs/forwarding.md): template → allowlist → tokens read with their
   * one audit event → decrypt → address resolved and checked, verified TLS connection open →
   * CVC taken → request written. Each refusal before the last step sends nothing.
   */
  private async run(
    principal: Principal,
    request: ForwardRequest,
    onDestination: (destination: Destination) => void,
  ): Promise<RelayedResponse> {
    const method = request.method ?? "POST";
    const input = { ...request, method };
    const compiled = compileForwardTemplate(input);
    if (!compiled.ok) throw new VaultError("FORWARD_TEMPLATE_INVALID", { errors: compiled.issues });
    const { template } = compiled;

    const allowlist = await this.destinations.allowlistOf(principal.tenantId);
    const checked = checkDestination(request.url, allowlist);
    if (!checked.ok) {
      throw new VaultError("FORWARD_DESTINATION_NOT_ALLOWED", { detail: checked.refusal });
    }
    const { destination } = checked;
    onDestination(destination);

    const cards = await openCards(this.deps, principal, template, {
      host: destination.host,
      port: destination.port,
      path: destination.path.split("?", 1)[0] ?? "/",
      method,
    });
    let sent: Buffer | undefined;
    try {
      const result = await this.deps.safeFetch(
        {
          method,
          url: request.url,
          headers: declaredHeaders(input, template),
          // A CVC is taken once and cannot be restored: never risk it on a pooled connection
          // the processor may just have closed (docs/forwarding.md).
          freshConnection: template.cvcTokenIds.length > 0,
          ...(request.timeout_ms === undefined ? {} : { timeoutMs: request.timeout_ms }),
          lateParts: async () => {
            // PCI DSS 3.3.1.2: the CVC leaves the store only now, with a verified connection
            // to the checked processor open; it is never put back.
            await takeCvcs(this.deps.cvcs, principal, template, cards);
            const valuesOf = (tokenId: string) => cards.get(tokenId) as OpenCard;
            sent = renderBody(template.body, valuesOf);
            return {
              headers: renderHeaders(template, request.content_type, valuesOf),
              ...(sent === undefined ? {} : { body: sent }),
            };
          },
        },
        allowlist,
      );
      if (!result.ok) throw forwardErrorOf(result.failure);
      const pans = [...cards.values()].map((card) => card.number);
      const relayed = relayResponse(result.response, pans);
      result.response.body.fill(0);
      return relayed;
    } finally {
      sent?.fill(0);
      forgetCards(cards);
    }
  }
}
