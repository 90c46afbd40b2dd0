import { createHash } from "node:crypto";
import { hmacSha256 } from "../crypto/hmac.js";
import { u16LengthPrefixed } from "../crypto/length-prefix.js";
import { newId } from "../crypto/random.js";

/** What the audit trail records (PCI DSS 10.2.1, 10.2.2): who did what to which object, and how it ended. */
export type AuditAction =
  | "token.create"
  | "token.deduplicate"
  | "token.read"
  | "token.reveal"
  | "token.delete"
  | "auth.failure"
  | "tenant.create"
  | "apikey.create"
  | "apikey.revoke"
  | "apikey.rotate"
  | "audit.read"
  | "key.create"
  | "key.retire"
  | "key.destroy"
  | "key.reencrypt"
  | "kek.rotate"
  | "kek.rewrap"
  | "ceremony.propose"
  | "ceremony.approve"
  | "ceremony.reject"
  | "custodians.rekey"
  | "vault.unseal"
  | "token.purge"
  | "tenant.update"
  | "jose_key.create"
  | "jose_key.rotate"
  | "jose_key.destroy"
  | "tenant_jose_key.create"
  | "tenant_jose_key.revoke"
  | "capture.session"
  | "auth.login"
  | "auth.lockout"
  | "auth.refresh"
  | "auth.refresh_reuse"
  | "auth.logout"
  | "auth.step_up"
  | "auth.password_change"
  | "admin_user.create"
  | "admin_user.enroll"
  | "admin_user.enroll_confirm"
  | "admin_user.disable"
  | "admin_user.unlock"
  | "token.forward"
  | "forward_destination.create"
  | "forward_destination.delete"
  | "webhook_endpoint.create"
  | "webhook_endpoint.rotate"
  | "webhook_endpoint.delete"
  | "webhook.rejected"
  | "webhook_event.replay"
  | "webhook_event.purge"
  | "event_destination.create"
  | "event_destination.rotate"
  | "event_destination.delete"
  | "event_delivery.replay"
  | "event_delivery.purge";

export type AuditOutcome = "success" | "failure" | "denied";

export type AuditDetails = Readonly<Record<string, string | number | boolean>>;

export interface AuditEventInput {
  readonly tenantId: string | undefined;
  /** The principal: an API key id, `cli:<user>` or `system`. */
  readonly actor: string;
  readonly action: AuditAction;
  readonly objectId: string | undefined;
  readonly outcome: AuditOutcome;
  readonly details: AuditDetails;
}

/** An event as stored: its content plus the MAC of that content under the audit key. */
export interface AuditEventRow {
  readonly id: string;
  readonly occurred_at: Date;
  readonly tenant_id: string | null;
  readonly actor: string;
  readonly action: string;
  readonly object_id: string | null;
  readonly outcome: string;
  readonly details: AuditDetails;
  readonly mac_key_id: string;
  readonly row_mac: Buffer;
}

/** JSON with keys sorted at every level, so jsonb's own key order cannot change the MAC input. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The bytes an event's row MAC covers: every content column, length-prefixed. */
export function eventMacInput(row: Omit<AuditEventRow, "row_mac">): Buffer {
  const fields = [
    "payvault/audit-event/v1",
    row.id,
    row.occurred_at.toISOString(),
    row.tenant_id ?? "",
    row.actor,
    row.action,
    row.object_id ?? "",
    row.outcome,
    canonicalJson(row.details),
    row.mac_key_id,
  ];
  const parts: Buffer[] = [];
  for (const field of fields) {
    const bytes = Buffer.from(field, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

export function buildEventRow(
  input: AuditEventInput,
  at: Date,
  macKey: { id: string; material: Buffer },
): AuditEventRow {
  const content = {
    id: newId("evt"),
    occurred_at: at,
    tenant_id: input.tenantId ?? null,
    actor: input.actor,
    action: input.action,
    object_id: input.objectId ?? null,
    outcome: input.outcome,
    details: input.details,
    mac_key_id: macKey.id,
  };
  return { ...content, row_mac: hmacSha256(macKey.material, eventMacInput(content)) };
}

/** What a seal says about the events it covers, in (txid, id) order. */
export interface SealContent {
  readonly seq: number;
  readonly fromTxid: string;
  readonly toTxid: string;
  readonly eventCount: number;
  readonly digest: Buffer;
}

/** SHA-256 over each covered event's id and row MAC, in order: any event added, removed or reordered changes it. */
export function sealDigest(events: readonly { id: string; row_mac: Buffer }[]): Buffer {
  const hash = createHash("sha256").update("payvault/audit-seal-digest/v1");
  for (const event of events) {
    hash.update(u16LengthPrefixed(Buffer.from(event.id, "utf8")));
    hash.update(u16LengthPrefixed(event.row_mac));
  }
  return hash.digest();
}

/** Chain MAC of a seal: covers its own content and the previous seal's chain MAC. */
export function sealMac(key: Buffer, seal: SealContent, previous: Buffer | null): Buffer {
  const numbers = Buffer.alloc(12);
  numbers.writeBigUInt64BE(BigInt(seal.seq), 0);
  numbers.writeUInt32BE(seal.eventCount, 8);
  return hmacSha256(
    key,
    Buffer.from("payvault/audit-seal/v1"),
    numbers,
    u16LengthPrefixed(Buffer.from(seal.fromTxid, "ascii")),
    u16LengthPrefixed(Buffer.from(seal.toTxid, "ascii")),
    seal.digest,
    previous ?? Buffer.alloc(32),
  );
}
