import { chainMac, eventMacInput } from "../../audit/audit-event.js";
import { constantTimeEqual } from "../../crypto/compare.js";
import { DecryptionError } from "../../crypto/decryption-error.js";
import { hmacSha256 } from "../../crypto/hmac.js";
import type { KeyRing } from "../../keys/key-ring.js";
import type { StoredEvent } from "../../store/audit-repo.js";
import { findSealedEvents, findUnsealedEvents } from "../../store/audit-repo.js";
import type { SqlClient } from "../../store/database.js";
import { SYSTEM_OWNER } from "./audit-trail.js";

export interface BrokenLink {
  readonly eventId: string;
  readonly chainSeq: number | null;
  readonly reason: "row_mac_mismatch" | "chain_mac_mismatch" | "sequence_gap" | "unknown_mac_key";
}

export interface VerifyReport {
  readonly sealed: number;
  readonly unsealed: number;
  readonly brokenLink: BrokenLink | undefined;
}

/**
 * Walks the chain from its first event: each row MAC must match the row's content and each
 * chain MAC must cover its predecessor, with no gap in the positions. Then checks the row MACs
 * of events not yet sealed. Reports the first broken link (PCI DSS 10.3.4: audit logs are
 * protected from modification, and modification is detectable).
 */
export async function verifyAuditChain(db: SqlClient, keys: KeyRing): Promise<VerifyReport> {
  const keyOf = async (event: StoredEvent) => {
    try {
      return (await keys.keyById(event.mac_key_id, SYSTEM_OWNER, "audit")).material;
    } catch (err) {
      if (err instanceof DecryptionError) return undefined;
      throw err;
    }
  };
  let previous: Buffer | null = null;
  let expected = 1;
  let sealed = 0;
  for (;;) {
    const page = await findSealedEvents(db, expected - 1, 1000);
    if (page.length === 0) break;
    for (const event of page) {
      const key = await keyOf(event);
      const link = { eventId: event.id, chainSeq: event.chain_seq };
      if (key === undefined)
        return { sealed, unsealed: 0, brokenLink: { ...link, reason: "unknown_mac_key" } };
      if (event.chain_seq !== expected)
        return { sealed, unsealed: 0, brokenLink: { ...link, reason: "sequence_gap" } };
      if (!constantTimeEqual(hmacSha256(key, eventMacInput(event)), event.row_mac)) {
        return { sealed, unsealed: 0, brokenLink: { ...link, reason: "row_mac_mismatch" } };
      }
      const mac = chainMac(key, expected, previous, event.row_mac);
      if (event.chain_mac === null || !constantTimeEqual(mac, event.chain_mac)) {
        return { sealed, unsealed: 0, brokenLink: { ...link, reason: "chain_mac_mismatch" } };
      }
      previous = mac;
      expected += 1;
      sealed += 1;
    }
  }
  const pending = await findUnsealedEvents(db, 100_000);
  for (const event of pending) {
    const key = await keyOf(event);
    if (
      key === undefined ||
      !constantTimeEqual(hmacSha256(key, eventMacInput(event)), event.row_mac)
    ) {
      const reason = key === undefined ? "unknown_mac_key" : "row_mac_mismatch";
      return {
        sealed,
        unsealed: pending.length,
        brokenLink: { eventId: event.id, chainSeq: null, reason },
      };
    }
  }
  return { sealed, unsealed: pending.length, brokenLink: undefined };
}
