import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEventRow } from "../../src/audit/audit-event.js";
import { buildEventRow, eventMacInput } from "../../src/audit/audit-event.js";
import { hmacSha256 } from "../../src/crypto/hmac.js";
import { AuditSealer } from "../../src/services/audit/audit-sealer.js";
import { SYSTEM_OWNER } from "../../src/services/audit/audit-trail.js";
import type { BrokenLink, VerifyReport } from "../../src/services/audit/audit-verify.js";
import { verifyAuditChain } from "../../src/services/audit/audit-verify.js";
import type { SealRow } from "../../src/store/audit-repo.js";
import { findSeals, insertAuditEvent, insertSeal } from "../../src/store/audit-repo.js";
import { DRIVERS } from "../support/databases.js";
import { bearer, CARDS, card, panSpellings } from "../support/session-fixtures.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

/** An event in seal order, (txid, id). */
interface EventRow {
  id: string;
  txid: string;
  action: string;
  outcome: string;
  object_id: string | null;
}

/** An event with the seals whose [from_txid, to_txid) range holds its txid. */
interface Coverage {
  id: string;
  action: string;
  object_id: string | null;
  seqs: number[];
}

/** A whole stored row, as text where the types differ between drivers, to put it back. */
interface SavedRow {
  id: string;
  txid: string;
  occurred_at: Date;
  tenant_id: string | null;
  actor: string;
  action: string;
  object_id: string | null;
  outcome: string;
  details: string;
  mac_key_id: string;
  row_mac: Buffer;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

for (const driver of DRIVERS) {
  describe(`audit chain on ${driver.name}`, () => {
    let vault: TestVault;
    let revealEventId: string;

    const db = () => vault.core.db;
    const verify = (): Promise<VerifyReport> => verifyAuditChain(db(), vault.core.keys);

    async function events(): Promise<EventRow[]> {
      const { rows } = await db().query<EventRow>(
        `SELECT id, txid::text AS txid, action, outcome, object_id FROM audit_events
          ORDER BY txid, id`,
      );
      return rows;
    }

    async function seals(): Promise<SealRow[]> {
      return findSeals(db(), 0, 1_000_000);
    }

    async function coverage(): Promise<Coverage[]> {
      const { rows } = await db().query<{
        id: string;
        action: string;
        object_id: string | null;
        seqs: string;
      }>(
        `SELECT e.id, e.action, e.object_id,
                coalesce(string_agg(s.seq::text, ',' ORDER BY s.seq), '') AS seqs
           FROM audit_events e
           LEFT JOIN audit_seals s ON e.txid >= s.from_txid AND e.txid < s.to_txid
          GROUP BY e.id, e.action, e.object_id, e.txid
          ORDER BY e.txid, e.id`,
      );
      return rows.map((r) => ({
        ...r,
        seqs: r.seqs === "" ? [] : r.seqs.split(",").map(Number),
      }));
    }

    /** The one seal covering `eventId` (fails when it is covered by none or several). */
    async function sealOf(eventId: string): Promise<number> {
      const row = (await coverage()).find((c) => c.id === eventId);
      expect(row?.seqs, `seals covering ${eventId}`).toHaveLength(1);
      return row?.seqs[0] as number;
    }

    async function count(where = "true", params: unknown[] = []): Promise<number> {
      const { rows } = await db().query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_events WHERE ${where}`,
        params,
      );
      return rows[0]?.n ?? -1;
    }

    async function unsealedCount(): Promise<number> {
      return count(
        `txid >= coalesce((SELECT to_txid FROM audit_seals ORDER BY seq DESC LIMIT 1), '0'::xid8)`,
      );
    }

    /**
     * Seals until no event is left unsealed, returning how many events the sealer sealed. On
     * PostgreSQL the horizon is cluster-wide, so another suite's open transaction may hold it
     * back for a moment; PGlite seals everything in one call.
     */
    async function sealAll(): Promise<number> {
      let total = 0;
      for (let attempt = 0; attempt < 200; attempt++) {
        total += await vault.core.sealer.sealPending();
        if ((await unsealedCount()) === 0) return total;
        await sleep(25);
      }
      throw new Error("events still unsealed after 200 rounds");
    }

    /** The report of a chain broken at `link`, once the first `intact` seals verified. */
    function brokenAfter(pristine: readonly SealRow[], intact: number, link: BrokenLink) {
      const verified = pristine.filter((s) => s.seq <= intact);
      expect(verified).toHaveLength(intact);
      return {
        seals: intact,
        sealed: verified.reduce((n, s) => n + s.event_count, 0),
        unsealed: 0,
        brokenLink: link,
      };
    }

    async function saveRow(id: string): Promise<SavedRow> {
      const { rows } = await db().query<SavedRow>(
        `SELECT id, txid::text AS txid, occurred_at, tenant_id, actor, action, object_id, outcome,
                details::text AS details, mac_key_id, row_mac
           FROM audit_events WHERE id = $1`,
        [id],
      );
      if (rows[0] === undefined) throw new Error(`no event ${id}`);
      return rows[0];
    }

    async function insertRow(row: SavedRow): Promise<void> {
      await db().query(
        `INSERT INTO audit_events (id, txid, occurred_at, tenant_id, actor, action, object_id,
                                   outcome, details, mac_key_id, row_mac)
         VALUES ($1, $2::xid8, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)`,
        [
          row.id,
          row.txid,
          row.occurred_at,
          row.tenant_id,
          row.actor,
          row.action,
          row.object_id,
          row.outcome,
          row.details,
          row.mac_key_id,
          row.row_mac,
        ],
      );
    }

    async function restoreRow(row: SavedRow): Promise<void> {
      await db().query("DELETE FROM audit_events WHERE id = $1", [row.id]);
      await insertRow(row);
    }

    /** A stored event as the MAC functions see it. */
    async function storedEvent(id: string): Promise<AuditEventRow> {
      const { rows } = await db().query<AuditEventRow>(
        `SELECT id, occurred_at, tenant_id, actor, action, object_id, outcome, details,
                mac_key_id, row_mac
           FROM audit_events WHERE id = $1`,
        [id],
      );
      if (rows[0] === undefined) throw new Error(`no event ${id}`);
      return rows[0];
    }

    async function auditKey(keyId: string): Promise<Buffer> {
      return (await vault.core.keys.keyById(keyId, SYSTEM_OWNER, "audit")).material;
    }

    async function restoreSeals(saved: readonly SealRow[]): Promise<void> {
      await db().query("DELETE FROM audit_seals");
      for (const seal of saved) await insertSeal(db(), seal);
    }

    async function expectIntact(): Promise<VerifyReport> {
      const report = await verify();
      expect(report.brokenLink).toBeUndefined();
      return report;
    }

    async function tokenize(number: string, extra: Record<string, unknown> = {}) {
      return vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: bearer(vault.adminKey),
        payload: { card: card(number), ...extra },
      });
    }

    async function createEventId(tokenId: string): Promise<string> {
      const { rows } = await db().query<{ id: string }>(
        "SELECT id FROM audit_events WHERE action = 'token.create' AND object_id = $1",
        [tokenId],
      );
      expect(rows).toHaveLength(1);
      return (rows[0] as { id: string }).id;
    }

    /** Seals: seq 1..n, each starting where the previous ended, together covering every event once. */
    async function expectContiguousSeals(): Promise<SealRow[]> {
      const all = await seals();
      expect(all.map((s) => s.seq)).toEqual(all.map((_, i) => i + 1));
      all.forEach((seal, i) => {
        expect(seal.from_txid, `from_txid of seal ${seal.seq}`).toBe(
          i === 0 ? "0" : all[i - 1]?.to_txid,
        );
        expect(BigInt(seal.to_txid)).toBeGreaterThan(BigInt(seal.from_txid));
        expect(seal.event_count).toBeGreaterThan(0);
      });
      const total = await count();
      expect(all.reduce((n, s) => n + s.event_count, 0)).toBe(total);
      const covered = await coverage();
      expect(covered).toHaveLength(total);
      expect(covered.filter((c) => c.seqs.length !== 1)).toEqual([]);
      for (const seal of all) {
        expect(covered.filter((c) => c.seqs[0] === seal.seq)).toHaveLength(seal.event_count);
      }
      return all;
    }

    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => vault?.close());

    it("seals a whole session into contiguous seals that verify intact", async () => {
      const auth = bearer(vault.adminKey);
      // Part 1: bootstrap, tokenize, deduplicate, batch.
      const created = await tokenize(CARDS.visa);
      expect(created.statusCode).toBe(201);
      const id = created.json<{ id: string }>().id;
      expect((await tokenize(CARDS.visa)).statusCode).toBe(200);
      const batch = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens/batch",
        headers: auth,
        payload: { cards: [{ card: card(CARDS.amex) }, { card: card(CARDS.mastercard) }] },
      });
      expect(batch.statusCode).toBe(200);
      expect(await sealAll()).toBe(await count());

      // Part 2: read, reveal, an authentication failure.
      let before = await count();
      expect(
        (await vault.app.inject({ method: "GET", url: `/v1/tokens/${id}`, headers: auth }))
          .statusCode,
      ).toBe(200);
      const reveal = await vault.app.inject({
        method: "POST",
        url: `/v1/tokens/${id}/reveal`,
        headers: auth,
        payload: { purpose: "refund #77" },
      });
      expect(reveal.statusCode).toBe(200);
      expect((await vault.app.inject({ method: "GET", url: `/v1/tokens/${id}` })).statusCode).toBe(
        401,
      );
      expect(await count()).toBeGreaterThan(before);
      expect(await sealAll()).toBe((await count()) - before);

      // Part 3: delete.
      before = await count();
      expect(
        (await vault.app.inject({ method: "DELETE", url: `/v1/tokens/${id}`, headers: auth }))
          .statusCode,
      ).toBe(204);
      expect(await count()).toBeGreaterThan(before);
      expect(await sealAll()).toBe((await count()) - before);

      const total = await count();
      const all = await expectContiguousSeals();
      expect(all.length).toBeGreaterThanOrEqual(3);
      const report = await expectIntact();
      expect(report).toEqual({
        seals: all.length,
        sealed: total,
        unsealed: 0,
        brokenLink: undefined,
      });
      const rows = await events();
      expect([...new Set(rows.map((r) => r.action))]).toEqual(
        expect.arrayContaining([
          "tenant.create",
          "apikey.create",
          "key.create",
          "token.create",
          "token.deduplicate",
          "token.read",
          "token.reveal",
          "auth.failure",
          "token.delete",
        ]),
      );
      const revealRow = rows.find((r) => r.action === "token.reveal" && r.object_id === id);
      revealEventId = (revealRow as EventRow).id;
      expect(await sealOf(revealEventId)).toBeGreaterThan(1);
      // Sealing again finds nothing and changes nothing.
      expect(await vault.core.sealer.sealPending()).toBe(0);
      expect(await seals()).toEqual(all);
      expect(await verify()).toEqual(report);
    });

    it("appends seals without updating or deleting any event or earlier seal", async () => {
      expect((await tokenize(CARDS.visaClassic)).statusCode).toBe(201);
      expect((await tokenize(CARDS.mastercard2Series)).statusCode).toBe(201);
      const pending = await unsealedCount();
      expect(pending).toBeGreaterThanOrEqual(2);
      const versions = async (table: string, key: string) =>
        (
          await db().query<{ key: string; xmin: string; ctid: string }>(
            `SELECT ${key}::text AS key, xmin::text AS xmin, ctid::text AS ctid FROM ${table}
              ORDER BY ${key}`,
          )
        ).rows;
      const eventsBefore = await versions("audit_events", "id");
      const sealsBefore = await versions("audit_seals", "seq");
      expect(eventsBefore).toHaveLength(await count());
      // Any UPDATE or DELETE of an event while sealing aborts the sealer's transaction.
      await db().exec(`
        CREATE FUNCTION pv_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit rows are append-only (% on %)', TG_OP, TG_TABLE_NAME; END $$;
        CREATE TRIGGER pv_append_only BEFORE UPDATE OR DELETE ON audit_events
          FOR EACH ROW EXECUTE FUNCTION pv_append_only();
        CREATE TRIGGER pv_append_only BEFORE UPDATE OR DELETE ON audit_seals
          FOR EACH ROW EXECUTE FUNCTION pv_append_only();`);
      try {
        expect(await sealAll()).toBe(pending);
      } finally {
        await db().exec(`
          DROP TRIGGER pv_append_only ON audit_events;
          DROP TRIGGER pv_append_only ON audit_seals;
          DROP FUNCTION pv_append_only();`);
      }
      // Every event row and every earlier seal row is the very tuple it was (same xmin, ctid).
      expect(await versions("audit_events", "id")).toEqual(eventsBefore);
      const sealsAfter = await versions("audit_seals", "seq");
      expect(sealsAfter.length).toBeGreaterThan(sealsBefore.length);
      expect(sealsAfter.slice(0, sealsBefore.length)).toEqual(sealsBefore);
      await expectContiguousSeals();
      expect((await expectIntact()).unsealed).toBe(0);
    });

    it("names the sealed event whose content was edited (row_mac_mismatch)", async () => {
      const pristine = await seals();
      const target = await saveRow(revealEventId);
      const seq = await sealOf(target.id);
      const edits = [
        "details = jsonb_set(details, '{purpose}', '\"nothing to see\"')",
        "details = '{}'::jsonb",
        "outcome = 'failure'",
        "actor = 'key_someoneelse'",
        "action = 'token.read'",
        "object_id = 'tok_other'",
        "tenant_id = NULL",
        "occurred_at = occurred_at + interval '1 second'",
      ];
      for (const edit of edits) {
        await db().query(`UPDATE audit_events SET ${edit} WHERE id = $1`, [target.id]);
        expect(await verify(), edit).toEqual(
          brokenAfter(pristine, seq - 1, {
            eventId: target.id,
            sealSeq: seq,
            reason: "row_mac_mismatch",
          }),
        );
        await restoreRow(target);
        await expectIntact();
      }
    });

    it("detects an edited sealed event whose row MAC was recomputed or copied", async () => {
      const pristine = await seals();
      const target = await saveRow(revealEventId);
      const seq = await sealOf(target.id);
      const edited = { ...(await storedEvent(target.id)), details: { purpose: "nothing to see" } };
      const setMac = (mac: Buffer) =>
        db().query(
          `UPDATE audit_events SET details = '{"purpose":"nothing to see"}'::jsonb, row_mac = $2
            WHERE id = $1`,
          [target.id, mac],
        );

      // Re-MACed under a key that is not the audit key: the row MAC check names the event.
      await setMac(hmacSha256(randomBytes(32), eventMacInput(edited)));
      expect(await verify()).toEqual(
        brokenAfter(pristine, seq - 1, {
          eventId: target.id,
          sealSeq: seq,
          reason: "row_mac_mismatch",
        }),
      );
      await restoreRow(target);
      await expectIntact();

      // Another event's row MAC (and all its content but id and txid): the MAC covers the id.
      const neighbour = (await events()).find(
        (e) => e.id !== target.id && e.action !== "token.reveal",
      ) as EventRow;
      await db().query(
        `UPDATE audit_events AS t
            SET occurred_at = s.occurred_at, tenant_id = s.tenant_id, actor = s.actor,
                action = s.action, object_id = s.object_id, outcome = s.outcome,
                details = s.details, mac_key_id = s.mac_key_id, row_mac = s.row_mac
           FROM audit_events AS s WHERE t.id = $1 AND s.id = $2`,
        [target.id, neighbour.id],
      );
      expect(await verify()).toEqual(
        brokenAfter(pristine, seq - 1, {
          eventId: target.id,
          sealSeq: seq,
          reason: "row_mac_mismatch",
        }),
      );
      await restoreRow(target);
      await expectIntact();

      // Re-MACed under the real audit key (an insider holding it): every row MAC is valid, but
      // the covering seal's digest of ids and row MACs no longer matches.
      await setMac(hmacSha256(await auditKey(target.mac_key_id), eventMacInput(edited)));
      expect(await verify()).toEqual(
        brokenAfter(pristine, seq - 1, {
          eventId: undefined,
          sealSeq: seq,
          reason: "seal_digest_mismatch",
        }),
      );
      await restoreRow(target);
      await expectIntact();

      // Moved, untouched, into the first seal's range: both seals change; the first is named.
      const firstTxid = (await events())[0]?.txid as string;
      expect(seq).toBeGreaterThan(1);
      await db().query("UPDATE audit_events SET txid = $2::xid8 WHERE id = $1", [
        target.id,
        firstTxid,
      ]);
      expect(await verify()).toEqual(
        brokenAfter(pristine, 0, {
          eventId: undefined,
          sealSeq: 1,
          reason: "seal_digest_mismatch",
        }),
      );
      await restoreRow(target);
      await expectIntact();
    });

    it("reports a deleted sealed event as a digest mismatch of its seal", async () => {
      const pristine = await seals();
      const covered = await coverage();
      const last = pristine[pristine.length - 1] as SealRow;
      const middle = pristine[Math.floor(pristine.length / 2)] as SealRow;
      const inSeal = (seq: number) => covered.filter((c) => c.seqs[0] === seq);
      const victims = [
        inSeal(1)[0],
        inSeal(middle.seq)[Math.floor(inSeal(middle.seq).length / 2)],
        inSeal(last.seq)[inSeal(last.seq).length - 1],
      ] as Coverage[];
      for (const victim of victims) {
        const seq = victim.seqs[0] as number;
        const saved = await saveRow(victim.id);
        await db().query("DELETE FROM audit_events WHERE id = $1", [victim.id]);
        expect(await verify(), `${victim.action} in seal ${seq}`).toEqual(
          brokenAfter(pristine, seq - 1, {
            eventId: undefined,
            sealSeq: seq,
            reason: "seal_digest_mismatch",
          }),
        );
        await insertRow(saved);
        await expectIntact();
      }
    });

    it("detects an event forged into a sealed range", async () => {
      const pristine = await seals();
      const target = await saveRow(revealEventId);
      const seq = await sealOf(target.id);
      const seal = pristine.find((s) => s.seq === seq) as SealRow;
      const expectBroken = async (link: BrokenLink, label: string) => {
        expect(await verify(), label).toEqual(brokenAfter(pristine, seq - 1, link));
      };
      const forgedId = "evt_forged0000000000000";

      // A copy of a sealed event, under a new id, carrying that event's valid row MAC.
      await insertRow({ ...target, id: forgedId });
      await expectBroken(
        { eventId: forgedId, sealSeq: seq, reason: "row_mac_mismatch" },
        "copied row MAC",
      );
      await db().query("DELETE FROM audit_events WHERE id = $1", [forgedId]);

      // A made-up MAC, and a MAC key the vault does not have, at an explicit txid in the range.
      await insertRow({ ...target, id: forgedId, txid: seal.from_txid, row_mac: randomBytes(32) });
      await expectBroken(
        { eventId: forgedId, sealSeq: seq, reason: "row_mac_mismatch" },
        "random row MAC",
      );
      await db().query("DELETE FROM audit_events WHERE id = $1", [forgedId]);
      await insertRow({ ...target, id: forgedId, mac_key_id: "dek_notakey" });
      await expectBroken(
        { eventId: forgedId, sealSeq: seq, reason: "unknown_mac_key" },
        "unknown MAC key",
      );
      await db().query("DELETE FROM audit_events WHERE id = $1", [forgedId]);
      await expectIntact();

      // A well-formed event MACed under the real audit key (an insider holding it), placed at
      // each end of the sealed range by an explicit txid: only the seal's digest catches it.
      const key = await vault.core.keys.keyById(target.mac_key_id, SYSTEM_OWNER, "audit");
      const forged = buildEventRow(
        {
          tenantId: vault.tenantId,
          actor: "system",
          action: "token.delete",
          objectId: "tok_forged",
          outcome: "success",
          details: {},
        },
        new Date(target.occurred_at),
        { id: key.id, material: key.material },
      );
      for (const txid of [seal.from_txid, String(BigInt(seal.to_txid) - 1n)]) {
        await db().query(
          `INSERT INTO audit_events (id, txid, occurred_at, tenant_id, actor, action, object_id,
                                     outcome, details, mac_key_id, row_mac)
           VALUES ($1, $2::xid8, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)`,
          [
            forged.id,
            txid,
            forged.occurred_at,
            forged.tenant_id,
            forged.actor,
            forged.action,
            forged.object_id,
            forged.outcome,
            JSON.stringify(forged.details),
            forged.mac_key_id,
            forged.row_mac,
          ],
        );
        await expectBroken(
          { eventId: undefined, sealSeq: seq, reason: "seal_digest_mismatch" },
          `valid forgery at txid ${txid}`,
        );
        await db().query("DELETE FROM audit_events WHERE id = $1", [forged.id]);
        await expectIntact();
      }
    });

    it("detects edited, re-keyed and deleted seals", async () => {
      const pristine = await expectContiguousSeals();
      expect(pristine.length).toBeGreaterThanOrEqual(3);
      const middle = (pristine[Math.floor(pristine.length / 2)] as SealRow).seq;
      const last = (pristine[pristine.length - 1] as SealRow).seq;
      expect(middle).toBeGreaterThan(1);
      expect(middle).toBeLessThan(last);
      const cases: {
        label: string;
        seq: number;
        sql: string;
        params: unknown[];
        link: BrokenLink;
      }[] = [];
      for (const seq of [1, middle, last]) {
        const at = (reason: BrokenLink["reason"]): BrokenLink => ({
          eventId: undefined,
          sealSeq: seq,
          reason,
        });
        cases.push(
          {
            label: `chain_mac of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET chain_mac = $2 WHERE seq = $1",
            params: [seq, randomBytes(32)],
            link: at("chain_mac_mismatch"),
          },
          {
            label: `digest of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET digest = $2 WHERE seq = $1",
            params: [seq, randomBytes(32)],
            link: at("chain_mac_mismatch"),
          },
          {
            label: `event_count + 1 of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET event_count = event_count + 1 WHERE seq = $1",
            params: [seq],
            link: at("chain_mac_mismatch"),
          },
          {
            label: `event_count - 1 of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET event_count = event_count - 1 WHERE seq = $1",
            params: [seq],
            link: at("chain_mac_mismatch"),
          },
          {
            label: `to_txid of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET to_txid = (to_txid::text::bigint + 1)::text::xid8 WHERE seq = $1",
            params: [seq],
            link: at("chain_mac_mismatch"),
          },
          {
            label: `from_txid of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET from_txid = (from_txid::text::bigint + 1)::text::xid8 WHERE seq = $1",
            params: [seq],
            link: at("seal_gap"),
          },
          {
            label: `mac_key_id of seal ${seq}`,
            seq,
            sql: "UPDATE audit_seals SET mac_key_id = 'dek_notakey' WHERE seq = $1",
            params: [seq],
            link: at("unknown_mac_key"),
          },
        );
      }
      // Another seal's chain MAC copied in: valid-looking, but over other content.
      cases.push({
        label: `chain_mac of seal ${middle - 1} copied into seal ${middle}`,
        seq: middle,
        sql: `UPDATE audit_seals AS t SET chain_mac = s.chain_mac
                FROM audit_seals AS s WHERE t.seq = $1 AND s.seq = $1 - 1`,
        params: [middle],
        link: { eventId: undefined, sealSeq: middle, reason: "chain_mac_mismatch" },
      });
      for (const c of cases) {
        const result = await db().query(c.sql, c.params);
        expect(result.rowCount, c.label).toBe(1);
        expect(await verify(), c.label).toEqual(brokenAfter(pristine, c.seq - 1, c.link));
        await restoreSeals(pristine);
        await expectIntact();
      }

      // A deleted seal: the next one no longer follows its predecessor.
      for (const seq of [1, middle]) {
        await db().query("DELETE FROM audit_seals WHERE seq = $1", [seq]);
        expect(await verify(), `seal ${seq} deleted`).toEqual(
          brokenAfter(pristine, seq - 1, {
            eventId: undefined,
            sealSeq: seq + 1,
            reason: "seal_gap",
          }),
        );
        await restoreSeals(pristine);
        await expectIntact();
      }
      expect(await seals()).toEqual(pristine);
    });

    it("detects a tampered, forged or foreign-keyed event that is not sealed yet", async () => {
      const intact = await expectIntact();
      expect(intact.unsealed).toBe(0);
      expect((await tokenize(CARDS.discover)).statusCode).toBe(201);
      expect((await tokenize(CARDS.jcb)).statusCode).toBe(201);
      const lastSeal = (await seals()).at(-1) as SealRow;
      const unsealed = (await events()).filter((e) => BigInt(e.txid) >= BigInt(lastSeal.to_txid));
      expect(unsealed.length).toBe(2);
      expect((await coverage()).filter((c) => c.seqs.length === 0).map((c) => c.id)).toEqual(
        unsealed.map((e) => e.id),
      );
      const expected = (link: BrokenLink | undefined) => ({
        seals: intact.seals,
        sealed: intact.sealed,
        unsealed: 2,
        brokenLink: link,
      });
      expect(await verify()).toEqual(expected(undefined));

      const target = await saveRow((unsealed[1] as EventRow).id);
      await db().query("UPDATE audit_events SET actor = 'key_mallory' WHERE id = $1", [target.id]);
      expect(await verify()).toEqual(
        expected({ eventId: target.id, sealSeq: null, reason: "row_mac_mismatch" }),
      );
      await restoreRow(target);
      expect(await verify()).toEqual(expected(undefined));

      // An event inserted by hand: a made-up MAC, then a MAC key the vault does not have.
      const forged = { ...target, id: "evt_forged0000000000000", row_mac: randomBytes(32) };
      await insertRow(forged);
      expect(await verify()).toEqual({
        ...expected({ eventId: forged.id, sealSeq: null, reason: "row_mac_mismatch" }),
        unsealed: 3,
      });
      await restoreRow({ ...forged, mac_key_id: "dek_notakey" });
      expect(await verify()).toEqual({
        ...expected({ eventId: forged.id, sealSeq: null, reason: "unknown_mac_key" }),
        unsealed: 3,
      });
      await db().query("DELETE FROM audit_events WHERE id = $1", [forged.id]);

      expect(await sealAll()).toBe(2);
      expect(await expectIntact()).toEqual({
        seals: intact.seals + 1,
        sealed: intact.sealed + 2,
        unsealed: 0,
        brokenLink: undefined,
      });
    });

    // PGlite has one session: a transaction left open there blocks the sealer outright.
    it.skipIf(driver.name !== "postgres")(
      "never seals past a transaction that is still writing an event",
      async () => {
        await sealAll();
        const early = await tokenize(CARDS.visaClassic, { dedupe: false });
        expect(early.statusCode).toBe(201);
        const earlyEvent = await createEventId(early.json<{ id: string }>().id);
        const key = await vault.core.keys.activeKey(SYSTEM_OWNER, "audit");
        const inflight = buildEventRow(
          {
            tenantId: vault.tenantId,
            actor: "test",
            action: "token.read",
            objectId: "tok_inflight",
            outcome: "success",
            details: {},
          },
          vault.core.clock.now(),
          { id: key.id, material: key.material },
        );
        let release = () => {};
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        let opened = (_txid: string) => {};
        const openedTxid = new Promise<string>((resolve) => {
          opened = resolve;
        });
        const slow = vault.core.db.transaction(async (tx) => {
          await insertAuditEvent(tx, inflight);
          const { rows } = await tx.query<{ txid: string }>(
            "SELECT pg_current_xact_id()::text AS txid",
          );
          opened(rows[0]?.txid as string);
          await gate;
        });
        let inflightTxid: string;
        let lateEvent: string;
        try {
          inflightTxid = await openedTxid;
          const late = await tokenize(CARDS.mastercard2Series, { dedupe: false });
          expect(late.statusCode).toBe(201);
          lateEvent = await createEventId(late.json<{ id: string }>().id);
          const covering = async (id: string) =>
            (await coverage()).find((c) => c.id === id)?.seqs ?? [];
          for (let round = 0; round < 200 && (await covering(earlyEvent)).length === 0; round++) {
            await vault.core.sealer.sealPending();
            await sleep(25);
          }
          expect(await covering(earlyEvent)).toHaveLength(1);
          // Committed after the open transaction began: left for a later seal.
          expect(await covering(lateEvent)).toEqual([]);
          for (const seal of await seals()) {
            expect(BigInt(seal.to_txid)).toBeLessThanOrEqual(BigInt(inflightTxid));
          }
        } finally {
          release();
          await slow;
        }
        await sealAll();
        await expectContiguousSeals();
        expect(await sealOf(inflight.id)).toBeGreaterThan(await sealOf(earlyEvent));
        expect(await sealOf(lateEvent)).toBe(await sealOf(inflight.id));
        expect(await expectIntact()).toMatchObject({ unsealed: 0 });
      },
    );

    it("seals 50 concurrent tokenizations exactly once while sealers run alongside", async () => {
      const sealedBefore = (await expectIntact()).sealed;
      const sealsBefore = (await seals()).length;
      const second = new AuditSealer(vault.core.db, vault.core.keys, vault.core.clock);
      const numbers = Object.values(CARDS);
      let done = false;
      const requests = Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          tokenize(numbers[i % numbers.length] as string, { dedupe: false }),
        ),
      ).finally(() => {
        done = true;
      });
      let sealRounds = 0;
      const sealing = (async () => {
        while (!done) {
          await Promise.all([vault.core.sealer.sealPending(), second.sealPending()]);
          sealRounds += 1;
          // Let the requests' I/O callbacks run between rounds (PGlite resolves in microtasks).
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const responses = await requests;
      await sealing;
      expect(sealRounds).toBeGreaterThan(0);
      expect(responses.map((r) => r.statusCode)).toEqual(new Array(50).fill(201));
      const ids = responses.map((r) => r.json<{ id: string }>().id);
      expect(new Set(ids).size).toBe(50);

      await sealAll();
      const all = await expectContiguousSeals();
      const report = await expectIntact();
      expect(report).toEqual({
        seals: all.length,
        sealed: sealedBefore + 50,
        unsealed: 0,
        brokenLink: undefined,
      });
      expect(await count()).toBe(sealedBefore + 50);
      const created = (await coverage()).filter(
        (c) => c.action === "token.create" && ids.includes(c.object_id ?? ""),
      );
      expect(created).toHaveLength(50);
      expect(new Set(created.map((c) => c.object_id)).size).toBe(50);
      for (const event of created) {
        expect(event.seqs, event.id).toHaveLength(1);
        expect(event.seqs[0]).toBeGreaterThan(sealsBefore);
      }
    });

    it("refuses a reveal, with no card data, when its audit event cannot be written", async () => {
      const created = await tokenize(CARDS.amexAlt);
      expect(created.statusCode).toBe(201);
      const id = created.json<{ id: string }>().id;
      const reveal = () =>
        vault.app.inject({
          method: "POST",
          url: `/v1/tokens/${id}/reveal`,
          headers: bearer(vault.adminKey),
          payload: { purpose: "audit down" },
        });
      await db().exec(`
        CREATE FUNCTION pv_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.action = 'token.reveal' THEN RAISE EXCEPTION 'audit store refuses'; END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER pv_refuse_audit BEFORE INSERT ON audit_events
          FOR EACH ROW EXECUTE FUNCTION pv_refuse_audit();`);
      try {
        const refused = await reveal();
        expect(refused.statusCode, refused.body).toBe(503);
        expect(["AUDIT_UNAVAILABLE", "STORE_UNAVAILABLE"]).toContain(
          refused.json<{ code: string }>().code,
        );
        expect(refused.json()).not.toHaveProperty("card");
        for (const spelling of panSpellings(CARDS.amexAlt))
          expect(refused.body).not.toContain(spelling);
        expect(refused.body).not.toContain("audit store refuses");
        expect(await count("action = 'token.reveal' AND object_id = $1", [id])).toBe(0);
      } finally {
        await db().exec(
          "DROP TRIGGER pv_refuse_audit ON audit_events; DROP FUNCTION pv_refuse_audit();",
        );
      }
      const revealed = await reveal();
      expect(revealed.statusCode).toBe(200);
      expect(revealed.json<{ card: { number: string } }>().card.number).toBe(CARDS.amexAlt);
      expect(await count("action = 'token.reveal' AND object_id = $1", [id])).toBe(1);
    });

    it("writes no token and deletes none when their audit events cannot be written", async () => {
      const existing = await tokenize(CARDS.unionpay);
      const existingId = existing.json<{ id: string }>().id;
      const tokens = async () =>
        (await db().query<{ n: number }>("SELECT count(*)::int AS n FROM tokens")).rows[0]?.n;
      const before = await tokens();
      const eventsBefore = await count();
      await db().exec(`
        CREATE FUNCTION pv_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.action IN ('token.create', 'token.delete') THEN
            RAISE EXCEPTION 'audit store refuses';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER pv_refuse_audit BEFORE INSERT ON audit_events
          FOR EACH ROW EXECUTE FUNCTION pv_refuse_audit();`);
      try {
        const single = await tokenize(CARDS.visaDebit);
        expect(single.statusCode).toBe(503);
        const batch = await vault.app.inject({
          method: "POST",
          url: "/v1/tokens/batch",
          headers: bearer(vault.adminKey),
          payload: { cards: [{ card: card(CARDS.visaAlt) }, { card: card(CARDS.discoverAlt) }] },
        });
        expect(batch.statusCode).toBe(503);
        const del = await vault.app.inject({
          method: "DELETE",
          url: `/v1/tokens/${existingId}`,
          headers: bearer(vault.adminKey),
        });
        expect(del.statusCode).toBe(503);
        expect(await tokens()).toBe(before);
        expect(await count()).toBe(eventsBefore);
      } finally {
        await db().exec(
          "DROP TRIGGER pv_refuse_audit ON audit_events; DROP FUNCTION pv_refuse_audit();",
        );
      }
      const get = await vault.app.inject({
        method: "GET",
        url: `/v1/tokens/${existingId}`,
        headers: bearer(vault.adminKey),
      });
      expect(get.statusCode).toBe(200);
      await sealAll();
      await expectContiguousSeals();
      await expectIntact();
    });
  });
}
