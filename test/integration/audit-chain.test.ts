import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditSealer } from "../../src/services/audit/audit-sealer.js";
import type { VerifyReport } from "../../src/services/audit/audit-verify.js";
import { verifyAuditChain } from "../../src/services/audit/audit-verify.js";
import { DRIVERS } from "../support/databases.js";
import { bearer, CARDS, card, panSpellings } from "../support/session-fixtures.js";
import type { TestVault } from "../support/vault-harness.js";
import { startTestVault } from "../support/vault-harness.js";

interface ChainRow {
  id: string;
  chain_seq: number | null;
  action: string;
  outcome: string;
  object_id: string | null;
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
  chain_seq: number | null;
  chain_mac: Buffer | null;
}

for (const driver of DRIVERS) {
  describe(`audit chain on ${driver.name}`, () => {
    let vault: TestVault;
    let revealEventId: string;

    const verify = (): Promise<VerifyReport> => verifyAuditChain(vault.core.db, vault.core.keys);

    async function chain(): Promise<ChainRow[]> {
      const { rows } = await vault.core.db.query<ChainRow>(
        `SELECT id, chain_seq, action, outcome, object_id FROM audit_events
          ORDER BY chain_seq NULLS LAST, id`,
      );
      return rows;
    }

    async function count(where = "true", params: unknown[] = []): Promise<number> {
      const { rows } = await vault.core.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_events WHERE ${where}`,
        params,
      );
      return rows[0]?.n ?? -1;
    }

    async function saveRow(id: string): Promise<SavedRow> {
      const { rows } = await vault.core.db.query<SavedRow>(
        `SELECT id, txid::text AS txid, occurred_at, tenant_id, actor, action, object_id, outcome,
                details::text AS details, mac_key_id, row_mac, chain_seq, chain_mac
           FROM audit_events WHERE id = $1`,
        [id],
      );
      if (rows[0] === undefined) throw new Error(`no event ${id}`);
      return rows[0];
    }

    async function restoreRow(row: SavedRow): Promise<void> {
      await vault.core.db.query("DELETE FROM audit_events WHERE id = $1", [row.id]);
      await vault.core.db.query(
        `INSERT INTO audit_events (id, txid, occurred_at, tenant_id, actor, action, object_id,
                                   outcome, details, mac_key_id, row_mac, chain_seq, chain_mac)
         VALUES ($1, $2::xid8, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13)`,
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
          row.chain_seq,
          row.chain_mac,
        ],
      );
    }

    async function expectIntact(): Promise<VerifyReport> {
      const report = await verify();
      expect(report.brokenLink).toBeUndefined();
      return report;
    }

    async function tokenize(number: string, extra: Record<string, unknown> = {}) {
      const response = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: bearer(vault.adminKey),
        payload: { card: card(number), ...extra },
      });
      return response;
    }

    beforeAll(async () => {
      vault = await startTestVault(driver);
    });
    afterAll(async () => vault?.close());

    it("seals a whole session into one contiguous, intact chain", async () => {
      const auth = bearer(vault.adminKey);
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
      expect(
        (await vault.app.inject({ method: "DELETE", url: `/v1/tokens/${id}`, headers: auth }))
          .statusCode,
      ).toBe(204);

      const total = await count();
      expect(await vault.core.sealer.sealPending()).toBe(total);
      const report = await expectIntact();
      expect(report).toEqual({ sealed: total, unsealed: 0, brokenLink: undefined });
      const rows = await chain();
      expect(rows.map((r) => r.chain_seq)).toEqual(rows.map((_, i) => i + 1));
      expect([...new Set(rows.map((r) => r.action))]).toEqual(
        expect.arrayContaining([
          "tenant.create",
          "apikey.create",
          "token.create",
          "token.deduplicate",
          "token.read",
          "token.reveal",
          "auth.failure",
          "token.delete",
        ]),
      );
      const revealRow = rows.find((r) => r.action === "token.reveal" && r.object_id === id);
      revealEventId = (revealRow as ChainRow).id;
      // Sealing again finds nothing and changes nothing.
      expect(await vault.core.sealer.sealPending()).toBe(0);
      expect(await verify()).toEqual(report);
    });

    it("names the sealed event whose content was edited (row_mac_mismatch)", async () => {
      const target = await saveRow(revealEventId);
      const seq = target.chain_seq as number;
      expect(seq).toBeGreaterThan(1);
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
        await vault.core.db.query(`UPDATE audit_events SET ${edit} WHERE id = $1`, [target.id]);
        expect(await verify(), edit).toEqual({
          sealed: seq - 1,
          unsealed: 0,
          brokenLink: { eventId: target.id, chainSeq: seq, reason: "row_mac_mismatch" },
        });
        await restoreRow(target);
        await expectIntact();
      }
    });

    it("detects a replaced chain MAC or a row MAC swapped in from another event", async () => {
      const target = await saveRow(revealEventId);
      const seq = target.chain_seq as number;
      await vault.core.db.query("UPDATE audit_events SET chain_mac = $2 WHERE id = $1", [
        target.id,
        randomBytes(32),
      ]);
      expect((await verify()).brokenLink).toEqual({
        eventId: target.id,
        chainSeq: seq,
        reason: "chain_mac_mismatch",
      });
      await restoreRow(target);
      // Copy a neighbour's content and MACs (except id and position): still caught.
      const neighbour = (await chain()).find((r) => r.chain_seq === seq - 1) as ChainRow;
      await vault.core.db.query(
        `UPDATE audit_events AS t SET row_mac = s.row_mac, chain_mac = s.chain_mac
           FROM audit_events AS s WHERE t.id = $1 AND s.id = $2`,
        [target.id, neighbour.id],
      );
      expect((await verify()).brokenLink).toMatchObject({ eventId: target.id, chainSeq: seq });
      await restoreRow(target);
      await expectIntact();
    });

    it("reports a deleted sealed event as a sequence gap at the next one", async () => {
      const rows = await chain();
      const total = rows.length;
      for (const position of [Math.floor(total / 2), 1]) {
        const removed = rows[position - 1] as ChainRow;
        const next = rows[position] as ChainRow;
        const saved = await saveRow(removed.id);
        await vault.core.db.query("DELETE FROM audit_events WHERE id = $1", [removed.id]);
        expect(await verify()).toEqual({
          sealed: position - 1,
          unsealed: 0,
          brokenLink: { eventId: next.id, chainSeq: position + 1, reason: "sequence_gap" },
        });
        await restoreRow(saved);
        await expectIntact();
      }
    });

    it("detects a tampered, forged or foreign-keyed event that is not sealed yet", async () => {
      const sealedBefore = (await expectIntact()).sealed;
      expect((await tokenize(CARDS.discover)).statusCode).toBe(201);
      expect((await tokenize(CARDS.jcb)).statusCode).toBe(201);
      const unsealed = (await chain()).filter((r) => r.chain_seq === null);
      expect(unsealed.length).toBe(2);
      expect(await verify()).toEqual({ sealed: sealedBefore, unsealed: 2, brokenLink: undefined });

      const target = await saveRow((unsealed[1] as ChainRow).id);
      await vault.core.db.query("UPDATE audit_events SET actor = 'key_mallory' WHERE id = $1", [
        target.id,
      ]);
      expect(await verify()).toEqual({
        sealed: sealedBefore,
        unsealed: 2,
        brokenLink: { eventId: target.id, chainSeq: null, reason: "row_mac_mismatch" },
      });
      await restoreRow(target);
      await expectIntact();

      // An event inserted by hand: a made-up MAC, then a MAC key the vault does not have.
      const forged = {
        ...target,
        id: "evt_forged0000000000000",
        txid: target.txid,
        row_mac: randomBytes(32),
      };
      await restoreRow(forged);
      expect((await verify()).brokenLink).toEqual({
        eventId: forged.id,
        chainSeq: null,
        reason: "row_mac_mismatch",
      });
      await restoreRow({ ...forged, mac_key_id: "dek_notakey" });
      expect((await verify()).brokenLink).toEqual({
        eventId: forged.id,
        chainSeq: null,
        reason: "unknown_mac_key",
      });
      await vault.core.db.query("DELETE FROM audit_events WHERE id = $1", [forged.id]);

      expect(await vault.core.sealer.sealPending()).toBe(2);
      expect(await expectIntact()).toEqual({
        sealed: sealedBefore + 2,
        unsealed: 0,
        brokenLink: undefined,
      });
    });

    it("seals 50 concurrent tokenizations exactly once while sealers run alongside", async () => {
      const sealedBefore = (await expectIntact()).sealed;
      const second = new AuditSealer(vault.core.db, vault.core.keys);
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

      await vault.core.sealer.sealPending();
      const report = await expectIntact();
      expect(report).toEqual({ sealed: sealedBefore + 50, unsealed: 0, brokenLink: undefined });
      const rows = await chain();
      expect(rows.map((r) => r.chain_seq)).toEqual(rows.map((_, i) => i + 1));
      const created = rows.filter(
        (r) => r.action === "token.create" && ids.includes(r.object_id ?? ""),
      );
      expect(created).toHaveLength(50);
      expect(created.every((r) => r.chain_seq !== null && r.chain_seq > sealedBefore)).toBe(true);
      expect(new Set(created.map((r) => r.object_id)).size).toBe(50);
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
      await vault.core.db.exec(`
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
        await vault.core.db.exec(
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
        (await vault.core.db.query<{ n: number }>("SELECT count(*)::int AS n FROM tokens")).rows[0]
          ?.n;
      const before = await tokens();
      await vault.core.db.exec(`
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
      } finally {
        await vault.core.db.exec(
          "DROP TRIGGER pv_refuse_audit ON audit_events; DROP FUNCTION pv_refuse_audit();",
        );
      }
      const get = await vault.app.inject({
        method: "GET",
        url: `/v1/tokens/${existingId}`,
        headers: bearer(vault.adminKey),
      });
      expect(get.statusCode).toBe(200);
      await vault.core.sealer.sealPending();
      await expectIntact();
    });
  });
}
