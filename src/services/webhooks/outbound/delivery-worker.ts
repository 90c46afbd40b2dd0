import type { SecretBytes } from "../../../crypto/secret.js";
import type { VaultMetrics } from "../../../metrics/metrics.js";
import type { SafeFetch } from "../../../outbound/safe-fetch.js";
import { claimDue, complete, fail, type RetryPolicy } from "../../../queue/queue-table.js";
import type { Database } from "../../../store/database.js";
import {
  CLAIMED_DELIVERY_COLUMNS,
  type ClaimedDelivery,
  type EventDestinationRow,
  findDestinationsByIds,
} from "../../../store/event-destinations-repo.js";
import { signStandardWebhook } from "../../../webhooks/signatures/standard-webhooks.js";
import type { Clock } from "../../clock.js";
import { liveSecrets, type SigningSecret, zeroizeSecrets } from "./destination-secrets.js";
import { checkDestinationUrl } from "./destination-url.js";
import { openSecrets, type WebhookKeys } from "./sealed-secrets.js";

export interface DeliveryDeps {
  readonly db: Database;
  readonly keys: WebhookKeys;
  readonly clock: Clock;
  readonly safeFetch: SafeFetch;
  readonly metrics: VaultMetrics;
  readonly retry: RetryPolicy;
}

/** Deliveries in flight at once per pass: a slow merchant must not hold up every other one. */
export const DELIVERY_CONCURRENCY = 8;

type Attempt =
  | { readonly ok: true; readonly status: number }
  | { readonly ok: false; readonly error: string; readonly status?: number };

/**
 * One pass of the delivery queue: claims due deliveries (FOR UPDATE SKIP LOCKED, a lease per
 * row), signs each body in the Standard Webhooks format with every live secret of its
 * destination and POSTs it through the SSRF-safe client, with the destination's URL as the only
 * allowlist entry (the address policy runs again after DNS: docs/outbound.md). A 2xx completes
 * the delivery; anything else is retried with exponential backoff and, after the last attempt,
 * dead-lettered (queue-table.ts). Neither the payload nor a secret is ever logged or stored in
 * `last_error` (a short code: `HTTP_503`, `ADDRESS_REFUSED`, …).
 */
export async function deliverDue(deps: DeliveryDeps, limit: number): Promise<number> {
  const claimed = await claimDue<ClaimedDelivery>(
    deps.db,
    "event_deliveries",
    CLAIMED_DELIVERY_COLUMNS,
    deps.clock.now(),
    limit,
    deps.retry.maxAttempts,
  );
  if (claimed.length === 0) return 0;
  const ids = [...new Set(claimed.map((row) => row.destination_id))];
  const destinations = new Map(
    (await findDestinationsByIds(deps.db, ids)).map((row) => [row.id, row]),
  );
  // Each destination's secrets are opened once per pass and zeroed when the pass ends.
  const opened = new Map<string, Promise<SigningSecret[]>>();
  const secretsOf = (row: EventDestinationRow) => {
    let secrets = opened.get(row.id);
    if (secrets === undefined) {
      secrets = openSecrets(deps.keys, row);
      opened.set(row.id, secrets);
    }
    return secrets;
  };
  try {
    await eachBounded(claimed, DELIVERY_CONCURRENCY, async (row) => {
      const destination = destinations.get(row.destination_id);
      const attempt = await attemptDelivery(deps, row, destination, secretsOf);
      await settle(deps, row, attempt);
    });
  } finally {
    for (const secrets of opened.values()) {
      await secrets.then(zeroizeSecrets, () => undefined);
    }
  }
  return claimed.length;
}

async function attemptDelivery(
  deps: DeliveryDeps,
  row: ClaimedDelivery,
  destination: EventDestinationRow | undefined,
  secretsOf: (row: EventDestinationRow) => Promise<SigningSecret[]>,
): Promise<Attempt> {
  if (destination === undefined) return { ok: false, error: "DESTINATION_GONE" };
  if (destination.status !== "active") return { ok: false, error: "DESTINATION_DISABLED" };
  let signing: SecretBytes[];
  try {
    signing = liveSecrets(await secretsOf(destination), deps.clock.now());
  } catch {
    return { ok: false, error: "SECRETS_UNAVAILABLE" };
  }
  if (signing.length === 0) return { ok: false, error: "SECRETS_UNAVAILABLE" };
  // Loopback literals are the outbound client's decision (its test switch), not the allowlist's.
  const url = checkDestinationUrl(destination.url, true);
  if (!url.ok) return { ok: false, error: "DESTINATION_NOT_ALLOWED" };
  const body = Buffer.from(JSON.stringify(row.payload), "utf8");
  const signature = signStandardWebhook(body, {
    id: row.event_id,
    secrets: signing,
    clock: deps.clock,
  });
  const result = await deps.safeFetch(
    {
      method: "POST",
      url: destination.url,
      headers: {
        ...signature,
        "content-type": "application/json",
        "user-agent": "payvault-webhooks/1",
      },
      body,
    },
    url.allowlist,
  );
  if (!result.ok) return { ok: false, error: result.failure.reason };
  const { status } = result.response;
  return status >= 200 && status < 300
    ? { ok: true, status }
    : { ok: false, error: `HTTP_${status}`, status };
}

async function settle(deps: DeliveryDeps, row: ClaimedDelivery, attempt: Attempt): Promise<void> {
  const now = deps.clock.now();
  if (attempt.ok) {
    if (await complete(deps.db, "event_deliveries", row, now, { lastStatus: attempt.status })) {
      deps.metrics.eventDeliveries.inc({ outcome: "done" });
    }
    return;
  }
  const outcome = await fail(
    deps.db,
    "event_deliveries",
    row,
    attempt.error,
    now,
    deps.retry,
    attempt.status === undefined ? {} : { lastStatus: attempt.status },
  );
  if (outcome !== undefined) {
    deps.metrics.eventDeliveries.inc({ outcome: outcome.state === "dead" ? "dead" : "retry" });
  }
}

/** Runs `work` over `items`, at most `bound` at a time; the first error is thrown after all end. */
async function eachBounded<T>(
  items: readonly T[],
  bound: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item).catch((err: unknown) => {
        errors.push(err);
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(bound, items.length) }, lane));
  if (errors.length > 0) throw errors[0];
}
