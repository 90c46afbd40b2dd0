import type { CvcStore } from "../../ephemeral/cvc-store.js";
import type { KeyRing } from "../../keys/key-ring.js";
import type { Logger } from "../../log/logger.js";
import type { VaultMetrics } from "../../metrics/metrics.js";
import type { SafeFetch } from "../../outbound/safe-fetch.js";
import type { Database } from "../../store/database.js";
import type { AuditTrail } from "../audit/audit-trail.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../principal.js";

export interface ForwardDeps {
  readonly db: Database;
  readonly keys: KeyRing;
  readonly audit: AuditTrail;
  readonly clock: Clock;
  readonly cvcs: CvcStore;
  readonly safeFetch: SafeFetch;
  readonly metrics: VaultMetrics;
}

/** STUB (issue 6, being written): the forward proxy and the tenants' destination allowlists. */
export class ForwardService {
  constructor(readonly deps: ForwardDeps) {}

  async forward(_principal: Principal, _request: unknown, _logger?: Logger): Promise<unknown> {
    throw new Error("not implemented");
  }
}
