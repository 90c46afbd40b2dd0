import { eventMacInput, sealDigest, sealMac } from "../../audit/audit-event.js";
import { constantTimeEqual } from "../../crypto/compare.js";
import { DecryptionError } from "../../crypto/decryption-error.js";
import { hmacSha256 } from "../../crypto/hmac.js";
import type { KeyRing } from "../../keys/key-ring.js";
import type { SealRow, StoredEvent } from "../../store/audit-repo.js";
import { findEventsInRange, findSeals } from "../../store/audit-repo.js";
import type { SqlClient } from "../../store/database.js";
import { SYSTEM_OWNER } from "./audit-trail.js";

export type BrokenReason =
  | "row_mac_mismatch"
  | "seal_digest_mismatch"
  | "chain_mac_mismatch"
  | "seal_gap"
  | "unknown_mac_key";

export interface BrokenLink {
  /** The event at fault, when one can be named (an edited event); a removed event cannot be. */
  readonly eventId: string | undefined;
  /** The seal at fault or covering the event; null for an event not sealed yet. */
  readonly sealSeq: number | null;
  readonly reason: BrokenReason;
}

export interface VerifyReport {
  readonly seals: number;
  readonly sealed: number;
  readonly unsealed: number;
  readonly brokenLink: BrokenLink | undefined;
}

type MacKeyOf = (keyId: string) => Promise<Buffer | undefined>;

function macKeys(keys: KeyRing): MacKeyOf {
  return async (keyId) => {
    try {
      return (await keys.keyById(keyId, SYSTEM_OWNER, "audit")).material;
    } catch (err) {
      if (err instanceof DecryptionError) return undefined;
      throw err;
    }
  };
}

/** The first event whose row MAC does not match its content, if any. */
async function firstBadEvent(
  events: readonly StoredEvent[],
  keyOf: MacKeyOf,
): Promise<{ event: StoredEvent; reason: BrokenReason } | undefined> {
  for (const event of events) {
    const key = await keyOf(event.mac_key_id);
    if (key === undefined) return { event, reason: "unknown_mac_key" };
    if (!constantTimeEqual(hmacSha256(key, eventMacInput(event)), event.row_mac)) {
      return { event, reason: "row_mac_mismatch" };
    }
  }
  return undefined;
}

/** Checks one seal against its predecessor and the events it covers. */
async function checkSeal(
  db: SqlClient,
  seal: SealRow,
  previous: SealRow | undefined,
  keyOf: MacKeyOf,
): Promise<{ link: BrokenLink | undefined; events: number }> {
  const broken = (reason: BrokenReason, eventId?: string) => ({
    link: { eventId, sealSeq: seal.seq, reason },
    events: 0,
  });
  if (seal.seq !== (previous?.seq ?? 0) + 1 || seal.from_txid !== (previous?.to_txid ?? "0")) {
    return broken("seal_gap");
  }
  const key = await keyOf(seal.mac_key_id);
  if (key === undefined) return broken("unknown_mac_key");
  const content = {
    seq: seal.seq,
    fromTxid: seal.from_txid,
    toTxid: seal.to_txid,
    eventCount: seal.event_count,
    digest: seal.digest,
  };
  if (!constantTimeEqual(sealMac(key, content, previous?.chain_mac ?? null), seal.chain_mac)) {
    return broken("chain_mac_mismatch");
  }
  const events = await findEventsInRange(db, seal.from_txid, seal.to_txid, Number.MAX_SAFE_INTEGER);
  const bad = await firstBadEvent(events, keyOf);
  if (bad !== undefined) return broken(bad.reason, bad.event.id);
  if (events.length !== seal.event_count || !constantTimeEqual(sealDigest(events), seal.digest)) {
    return broken("seal_digest_mismatch");
  }
  return { link: undefined, events: events.length };
}

/**
 * Walks the seals from the first: each must follow its predecessor without a gap, carry a chain
 * MAC over its content and the previous seal's, and match the events it covers (each event's row
 * MAC, their number, and the digest of their ids and MACs). Then checks the row MACs of events
 * not sealed yet. Reports the first broken link (PCI DSS 10.3.4: modification of audit logs is
 * detectable).
 */
export async function verifyAuditChain(db: SqlClient, keys: KeyRing): Promise<VerifyReport> {
  const keyOf = macKeys(keys);
  let previous: SealRow | undefined;
  let seals = 0;
  let sealed = 0;
  for (;;) {
    const page = await findSeals(db, previous?.seq ?? 0, 500);
    if (page.length === 0) break;
    for (const seal of page) {
      const { link, events } = await checkSeal(db, seal, previous, keyOf);
      if (link !== undefined) return { seals, sealed, unsealed: 0, brokenLink: link };
      previous = seal;
      seals += 1;
      sealed += events;
    }
  }
  const pending = await findEventsInRange(db, previous?.to_txid ?? "0", undefined, 1_000_000);
  const bad = await firstBadEvent(pending, keyOf);
  const brokenLink =
    bad === undefined ? undefined : { eventId: bad.event.id, sealSeq: null, reason: bad.reason };
  return { seals, sealed, unsealed: pending.length, brokenLink };
}
