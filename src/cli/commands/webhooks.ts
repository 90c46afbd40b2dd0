import { parseArgs } from "node:util";
import type { Core } from "../../app/core.js";
import type { Config } from "../../config/config.js";
import { VaultError } from "../../errors/registry.js";
import { purgeAllDead } from "../../queue/queue-table.js";
import {
  listDeadDeliveries,
  purgeAllDeadDeliveries,
  purgeDeadDelivery,
  replayDeadDelivery,
} from "../../services/webhooks/outbound/dead-letters.js";
import { insertAuditEvent } from "../../store/audit-repo.js";
import { findDelivery } from "../../store/event-destinations-repo.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

const USAGE = `usage: payvault webhooks dlq list [--tenant <id>] [--kind intake|delivery] [--limit N] [--json]
       payvault webhooks dlq replay <evt_… | dlv_…>
       payvault webhooks dlq purge <evt_… | dlv_…>
       payvault webhooks dlq purge --all [--tenant <id>] [--kind intake|delivery]`;

type Kind = "intake" | "delivery";

/**
 * `payvault webhooks dlq …`: the dead-letter queues for operators, across tenants. Received
 * provider events (`evt_…`) that failed processing N times, and deliveries to merchants
 * (`dlv_…`) that failed N times. Replaying queues one again with its attempts reset; purging
 * deletes it. Every replay and purge is audited with the OS account (PCI DSS 10.2.1.2, 10.2.1.5).
 */
export async function runWebhooks(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      kind: { type: "string" },
      limit: { type: "string" },
      all: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const [group, action, id, extra] = positionals;
  if (group !== "dlq" || action === undefined || extra !== undefined) throw new CliError(USAGE);
  const kinds = parseKinds(values.kind);
  const limit = values.limit === undefined ? 100 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new CliError("--limit must be 1 to 10000");
  }
  switch (action) {
    case "list": {
      if (id !== undefined) throw new CliError(USAGE);
      const rows = await withCore(config, (core) => listDead(core, kinds, values.tenant, limit));
      printRows(rows, values.json);
      return 0;
    }
    case "replay":
    case "purge": {
      if (values.all) {
        if (action !== "purge" || id !== undefined) throw new CliError(USAGE);
        const counts = await withCore(config, (core) => purgeAll(core, kinds, values.tenant));
        process.stdout.write(
          `purged ${counts.intake} dead received events and ${counts.delivery} dead deliveries\n`,
        );
        return 0;
      }
      if (id === undefined) throw new CliError(USAGE);
      const done = await withCore(config, (core) => actOn(core, action, id));
      process.stdout.write(`${action === "replay" ? "queued again" : "purged"}: ${done}\n`);
      return 0;
    }
    default:
      throw new CliError(USAGE);
  }
}

function parseKinds(raw: string | undefined): readonly Kind[] {
  if (raw === undefined) return ["intake", "delivery"];
  if (raw === "intake" || raw === "delivery") return [raw];
  throw new CliError("--kind must be intake or delivery");
}

async function listDead(
  core: Core,
  kinds: readonly Kind[],
  tenantId: string | undefined,
  limit: number,
): Promise<Record<string, string>[]> {
  const rows: Record<string, string>[] = [];
  if (kinds.includes("intake")) {
    for (const event of await core.webhooks.deadEvents(tenantId, limit)) {
      rows.push({
        id: event.id,
        kind: "intake",
        tenant: event.tenant_id,
        type: event.type,
        target: event.endpoint_id,
        attempts: String(event.attempts),
        last_error: event.last_error ?? "",
        dead_since: event.finished_at ?? "",
      });
    }
  }
  if (kinds.includes("delivery")) {
    for (const delivery of await listDeadDeliveries(core.db, {
      limit,
      ...(tenantId === undefined ? {} : { tenantId }),
    })) {
      rows.push({
        id: delivery.id,
        kind: "delivery",
        tenant: delivery.tenant_id,
        type: delivery.event_type,
        target: delivery.destination_id,
        attempts: String(delivery.attempts),
        last_error:
          delivery.last_error ??
          (delivery.last_status === null ? "" : `HTTP ${delivery.last_status}`),
        dead_since: delivery.finished_at?.toISOString() ?? "",
      });
    }
  }
  return rows;
}

async function actOn(core: Core, action: "replay" | "purge", id: string): Promise<string> {
  const actor = cliActor();
  try {
    if (id.startsWith("evt_")) {
      const actorRef = { name: actor, tenantId: undefined };
      const event =
        action === "replay"
          ? await core.webhooks.replay(actorRef, id)
          : await core.webhooks.purge(actorRef, id);
      return `${event.id} (${event.type})`;
    }
    if (id.startsWith("dlv_")) {
      const delivery = await findDelivery(core.db, undefined, id);
      if (delivery === undefined) throw new CliError(`no such delivery: ${id}`);
      if (delivery.state !== "dead") throw new CliError(`${id} is not dead-lettered`);
      const event = await core.audit.build({
        tenantId: delivery.tenant_id,
        actor,
        action: action === "replay" ? "event_delivery.replay" : "event_delivery.purge",
        objectId: id,
        outcome: "success",
        details: { destination: delivery.destination_id, type: delivery.event_type },
      });
      // The change and its audit event together, or neither.
      const changed = await core.db.transaction(async (tx) => {
        const done =
          action === "replay"
            ? await replayDeadDelivery(tx, id, core.clock.now())
            : await purgeDeadDelivery(tx, id);
        if (done) await insertAuditEvent(tx, event);
        return done;
      });
      if (!changed) throw new CliError(`${id} is not dead-lettered`);
      return `${id} (${delivery.event_type})`;
    }
  } catch (err) {
    if (err instanceof VaultError && err.code === "WEBHOOK_EVENT_NOT_FOUND") {
      throw new CliError(`no such received event: ${id}`);
    }
    if (err instanceof VaultError && err.code === "NOT_DEAD_LETTERED") {
      throw new CliError(`${id} is not dead-lettered`);
    }
    throw err;
  }
  throw new CliError("the id must be a received event (evt_…) or a delivery (dlv_…)");
}

async function purgeAll(
  core: Core,
  kinds: readonly Kind[],
  tenantId: string | undefined,
): Promise<Record<Kind, number>> {
  const counts: Record<Kind, number> = { intake: 0, delivery: 0 };
  const actor = cliActor();
  for (const kind of kinds) {
    // Each purge and its audit event (with the count) in one transaction: a purge that cannot
    // be audited does not happen, and the event says exactly what was deleted.
    counts[kind] = await core.db.transaction(async (tx) => {
      const deleted =
        kind === "intake"
          ? await purgeAllDead(tx, "webhook_events", tenantId)
          : await purgeAllDeadDeliveries(tx, tenantId);
      await insertAuditEvent(
        tx,
        await core.audit.build({
          tenantId,
          actor,
          action: kind === "intake" ? "webhook_event.purge" : "event_delivery.purge",
          objectId: undefined,
          outcome: "success",
          details: { all: true, tenant: tenantId ?? "*", deleted },
        }),
      );
      return deleted;
    });
  }
  return counts;
}
