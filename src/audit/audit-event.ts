import { hmacSha256 } from "../crypto/hmac.js";
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
  | "key.create";

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

/** Chain MAC of the event at position `seq`: covers its predecessor's chain MAC and its own row MAC. */
export function chainMac(
  key: Buffer,
  seq: number,
  previous: Buffer | null,
  rowMac: Buffer,
): Buffer {
  const position = Buffer.alloc(8);
  position.writeBigUInt64BE(BigInt(seq));
  return hmacSha256(
    key,
    Buffer.from("payvault/audit-chain/v1"),
    position,
    previous ?? Buffer.alloc(32),
    rowMac,
  );
}
