import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecryptionError } from "../../../src/crypto/decryption-error.js";
import {
  listDeadDeliveries,
  purgeAllDeadDeliveries,
  purgeDeadDelivery,
  replayDeadDelivery,
} from "../../../src/services/webhooks/outbound/dead-letters.js";
import { openSecrets } from "../../../src/services/webhooks/outbound/sealed-secrets.js";
import type { EventDestinationRow } from "../../../src/store/event-destinations-repo.js";
import {
  auditRows,
  auth,
  expectFieldError,
  expectProblem,
  keyIdOf,
  randomBase62,
} from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import { ManualClock } from "../../support/redis.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";

interface DestinationJson {
  id: string;
  url: string;
  event_types: string[];
  description: string;
  status: string;
  created_at: string;
  updated_at: string;
  secret?: string;
  previous_secret_expires_at?: string;
}

const URL_A = "https://hooks.shop.example.com/payvault/events";

for (const driver of DRIVERS) {
  describe(`event destinations API on ${driver.name}`, () => {
    const clock = new ManualClock(Date.now());
    let vault: TestVault;
    let key: string;
    let other: string;

    beforeAll(async () => {
      vault = await startTestVault(driver, { clock });
      key = await vault.newKey(vault.tenantId, ["webhooks:manage"]);
      other = (await vault.newTenant(["webhooks:manage"])).key;
    });
    afterAll(async () => vault?.close());

    const api = (method: "GET" | "POST" | "DELETE", url: string, as = key, payload?: object) =>
      vault.app.inject({
        method,
        url,
        headers: auth(as),
        ...(payload === undefined ? {} : { payload }),
      });
    const create = async (payload: object = { url: URL_A, event_types: ["token.created"] }) => {
      const res = await api("POST", "/v1/event-destinations", key, payload);
      expect(res.statusCode, res.body).toBe(201);
      return res.json() as DestinationJson & { secret: string };
    };
    const storedRow = async (id: string) =>
      (
        await vault.core.db.query<EventDestinationRow>(
          "SELECT * FROM event_destinations WHERE id = $1",
          [id],
        )
      ).rows[0] as EventDestinationRow;
    const secretBytes = (secret: string) => Buffer.from(secret.slice("whsec_".length), "base64");

    it("registers a destination; the whsec_ secret is in the 201 only, and stored only sealed", async () => {
      const created = await create({
        url: URL_A,
        event_types: ["token.created", "payment.*", "token.created"],
        description: "shop backend",
      });
      expect(created).toMatchObject({
        url: URL_A,
        event_types: ["token.created", "payment.*"],
        description: "shop backend",
        status: "active",
      });
      expect(created.id).toMatch(/^evd_[0-9A-Za-z]{22}$/);
      expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(secretBytes(created.secret).length).toBe(32);

      const one = await api("GET", `/v1/event-destinations/${created.id}`);
      const list = await api("GET", "/v1/event-destinations");
      for (const res of [one, list]) {
        expect(res.statusCode, res.body).toBe(200);
        expect(res.body).not.toContain(created.secret);
        expect(res.body).not.toContain("secret");
      }
      expect(one.json()).toEqual({ ...created, secret: undefined });
      expect((list.json() as { data: DestinationJson[] }).data.map((d) => d.id)).toContain(
        created.id,
      );

      // The row holds an envelope under the tenant's webhook DEK, never the secret's bytes.
      const row = await storedRow(created.id);
      expect(row.secrets.includes(secretBytes(created.secret))).toBe(false);
      expect(row.secrets.toString("latin1")).not.toContain(created.secret.slice(6));
      const dek = await vault.core.db.query<{ owner: string; purpose: string }>(
        "SELECT owner, purpose FROM data_keys WHERE id = $1",
        [row.dek_id],
      );
      expect(dek.rows[0]).toEqual({ owner: vault.tenantId, purpose: "webhook" });
      const opened = await openSecrets(vault.core.keys, row);
      expect(opened[0]?.key.use((b) => Buffer.from(b))).toEqual(secretBytes(created.secret));
      // The AAD binds the destination: the same envelope under another id does not open.
      await expect(
        openSecrets(vault.core.keys, { ...row, id: `evd_${randomBase62(22)}` }),
      ).rejects.toBeInstanceOf(DecryptionError);

      const [event] = (await auditRows(vault, "event_destination.create")).filter(
        (e) => e.object_id === created.id,
      );
      expect(event).toMatchObject({ tenant_id: vault.tenantId, actor: keyIdOf(key) });
      expect(JSON.stringify(event)).not.toContain(created.secret.slice(6));
    });

    it("rotates the secret: a new one shown once, the old one overlapping (default 1 day)", async () => {
      const created = await create();
      const before = clock.now().getTime();
      const res = await api("POST", `/v1/event-destinations/${created.id}/rotate-secret`, key, {
        overlap_seconds: 600,
      });
      expect(res.statusCode, res.body).toBe(200);
      const rotated = res.json() as DestinationJson & { secret: string };
      expect(rotated.secret).toMatch(/^whsec_/);
      expect(rotated.secret).not.toBe(created.secret);
      expect(Date.parse(rotated.previous_secret_expires_at as string)).toBe(before + 600_000);
      const row = await storedRow(created.id);
      const opened = await openSecrets(vault.core.keys, row);
      expect(opened.map((s) => s.key.use((b) => Buffer.from(b)))).toEqual([
        secretBytes(rotated.secret),
        secretBytes(created.secret),
      ]);
      expect(row.secrets.includes(secretBytes(rotated.secret))).toBe(false);

      const byDefault = await api("POST", `/v1/event-destinations/${created.id}/rotate-secret`);
      expect(byDefault.statusCode, byDefault.body).toBe(200);
      expect(
        Date.parse((byDefault.json() as DestinationJson).previous_secret_expires_at as string),
      ).toBe(clock.now().getTime() + 86_400_000);
      const get = await api("GET", `/v1/event-destinations/${created.id}`);
      expect(get.body).not.toContain("secret");
      const rotations = (await auditRows(vault, "event_destination.rotate")).filter(
        (e) => e.object_id === created.id,
      );
      expect(rotations.map((e) => e.details)).toEqual([
        { overlap_seconds: 600 },
        { overlap_seconds: 86_400 },
      ]);

      const tooLong = await api("POST", `/v1/event-destinations/${created.id}/rotate-secret`, key, {
        overlap_seconds: 7 * 86_400 + 1,
      });
      expectProblem(tooLong, "VALIDATION_FAILED");
    });

    it.each([
      ["http://hooks.shop.example.com/e", "url", "DESTINATION_URL_INVALID"],
      ["https://user:pw@hooks.shop.example.com/e", "url", "DESTINATION_URL_INVALID"],
      ["https://169.254.169.254/latest", "url", "DESTINATION_ADDRESS_REFUSED"],
      ["https://10.0.0.1/hooks", "url", "DESTINATION_ADDRESS_REFUSED"],
      ["https://127.0.0.1/hooks", "url", "DESTINATION_ADDRESS_REFUSED"],
      ["https://[::1]/hooks", "url", "DESTINATION_ADDRESS_REFUSED"],
      ["https://metadata.google.internal/x", "url", "DESTINATION_ADDRESS_REFUSED"],
    ])("refuses %s with a 400 field error, storing nothing", async (url, field, code) => {
      const before = (await vault.core.db.query("SELECT id FROM event_destinations")).rows.length;
      expectFieldError(
        await api("POST", "/v1/event-destinations", key, { url, event_types: ["*"] }),
        field,
        code,
      );
      const after = (await vault.core.db.query("SELECT id FROM event_destinations")).rows.length;
      expect(after).toBe(before);
    });

    it("refuses unknown event types, an empty list and unknown fields", async () => {
      expectFieldError(
        await api("POST", "/v1/event-destinations", key, {
          url: URL_A,
          event_types: ["token.created", "token.read"],
        }),
        "event_types.1",
        "EVENT_TYPE_UNKNOWN",
      );
      expectProblem(
        await api("POST", "/v1/event-destinations", key, { url: URL_A, event_types: [] }),
        "VALIDATION_FAILED",
      );
      expectProblem(
        await api("POST", "/v1/event-destinations", key, {
          url: URL_A,
          event_types: ["*"],
          secret: "whsec_chosen",
        }),
        "VALIDATION_FAILED",
      );
    });

    it("another tenant's destination or delivery is a 404, and is left untouched", async () => {
      const created = await create();
      for (const [method, url] of [
        ["GET", `/v1/event-destinations/${created.id}`],
        ["POST", `/v1/event-destinations/${created.id}/rotate-secret`],
        ["DELETE", `/v1/event-destinations/${created.id}`],
      ] as const) {
        expectProblem(await api(method, url, other), "EVENT_DESTINATION_NOT_FOUND");
      }
      const theirs = await api("GET", "/v1/event-destinations", other);
      expect(theirs.body).not.toContain(created.id);

      await vault.core.db.transaction((tx) =>
        vault.core.events.publish(tx, {
          id: `evt_${randomBase62(22)}`,
          tenantId: vault.tenantId,
          type: "token.created",
          createdAt: clock.now(),
          data: { token: `tok_${randomBase62(22)}` },
        }),
      );
      const { rows } = await vault.core.db.query<{ id: string }>(
        "SELECT id FROM event_deliveries WHERE destination_id = $1",
        [created.id],
      );
      const delivery = rows[0]?.id as string;
      expect(delivery).toMatch(/^dlv_/);
      await vault.core.db.query("UPDATE event_deliveries SET state = 'dead' WHERE id = $1", [
        delivery,
      ]);
      expectProblem(
        await api("POST", `/v1/event-deliveries/${delivery}/replay`, other),
        "EVENT_DELIVERY_NOT_FOUND",
      );
      expectProblem(
        await api("DELETE", `/v1/event-deliveries/${delivery}`, other),
        "EVENT_DELIVERY_NOT_FOUND",
      );
      const list = await api("GET", "/v1/event-deliveries?state=dead", other);
      expect(list.statusCode).toBe(200);
      expect(list.body).not.toContain(delivery);
      const mine = await api("GET", "/v1/event-deliveries?state=dead", key);
      expect(mine.body).toContain(delivery);
      const state = await vault.core.db.query<{ state: string }>(
        "SELECT state FROM event_deliveries WHERE id = $1",
        [delivery],
      );
      expect(state.rows[0]?.state).toBe("dead");
    });

    it("deletes a destination with its deliveries; a second delete is a 404", async () => {
      const created = await create();
      await vault.core.db.transaction((tx) =>
        vault.core.events.publish(tx, {
          id: `evt_${randomBase62(22)}`,
          tenantId: vault.tenantId,
          type: "token.created",
          createdAt: clock.now(),
          data: { token: `tok_${randomBase62(22)}` },
        }),
      );
      const count = async () =>
        (
          await vault.core.db.query("SELECT id FROM event_deliveries WHERE destination_id = $1", [
            created.id,
          ])
        ).rows.length;
      expect(await count()).toBe(1);
      const res = await api("DELETE", `/v1/event-destinations/${created.id}`);
      expect(res.statusCode, res.body).toBe(204);
      expect(await count()).toBe(0);
      expectProblem(
        await api("GET", `/v1/event-destinations/${created.id}`),
        "EVENT_DESTINATION_NOT_FOUND",
      );
      expectProblem(
        await api("DELETE", `/v1/event-destinations/${created.id}`),
        "EVENT_DESTINATION_NOT_FOUND",
      );
      const [event] = (await auditRows(vault, "event_destination.delete")).filter(
        (e) => e.object_id === created.id,
      );
      expect(event?.details).toEqual({ deliveries: 1 });
    });

    it("pages deliveries with a cursor and filters by state and destination", async () => {
      const created = await create({ url: URL_A, event_types: ["*"] });
      for (let i = 0; i < 3; i++) {
        await vault.core.db.transaction((tx) =>
          vault.core.events.publish(tx, {
            id: `evt_${randomBase62(22)}`,
            tenantId: vault.tenantId,
            type: "payment.charge.succeeded",
            createdAt: clock.now(),
            data: { charge: `ch_${i}` },
          }),
        );
      }
      const base = `/v1/event-deliveries?destination_id=${created.id}&limit=2`;
      const first = await api("GET", base);
      expect(first.statusCode, first.body).toBe(200);
      const page1 = first.json() as { data: { id: string; state: string }[]; next_cursor: string };
      expect(page1.data).toHaveLength(2);
      expect(page1.data[0]).toMatchObject({ state: "queued", attempts: 0, last_status: null });
      expect(Object.keys(page1.data[0] as object)).not.toContain("payload");
      const second = await api("GET", `${base}&cursor=${page1.next_cursor}`);
      const page2 = second.json() as { data: { id: string }[]; next_cursor: string | null };
      expect(page2.data).toHaveLength(1);
      expect(page2.next_cursor).toBeNull();
      expect(new Set([...page1.data, ...page2.data].map((d) => d.id)).size).toBe(3);
      const done = await api("GET", `/v1/event-deliveries?destination_id=${created.id}&state=done`);
      expect((done.json() as { data: unknown[] }).data).toHaveLength(0);
      expectProblem(await api("GET", "/v1/event-deliveries?state=lost"), "VALIDATION_FAILED");
      expectProblem(await api("GET", "/v1/event-deliveries?cursor=bm9wZQ"), "VALIDATION_FAILED");
    });

    it("the CLI's dead-letter functions list, replay and purge without a principal", async () => {
      const created = await create();
      await vault.core.db.transaction((tx) =>
        vault.core.events.publish(tx, {
          id: `evt_${randomBase62(22)}`,
          tenantId: vault.tenantId,
          type: "token.created",
          createdAt: clock.now(),
          data: { token: `tok_${randomBase62(22)}` },
        }),
      );
      const db = vault.core.db;
      const kill = () =>
        db.query("UPDATE event_deliveries SET state = 'dead' WHERE destination_id = $1", [
          created.id,
        ]);
      await kill();
      const dead = await listDeadDeliveries(db, { tenantId: vault.tenantId, limit: 500 });
      const mine = dead.find((d) => d.destination_id === created.id);
      expect(mine?.state).toBe("dead");
      const otherTenant = (await vault.newTenant([])).tenantId;
      expect(await listDeadDeliveries(db, { tenantId: otherTenant, limit: 10 })).toEqual([]);
      expect(await replayDeadDelivery(db, mine?.id as string, clock.now())).toBe(true);
      expect(await replayDeadDelivery(db, mine?.id as string, clock.now())).toBe(false);
      expect(await purgeDeadDelivery(db, mine?.id as string)).toBe(false);
      await kill();
      expect(await purgeAllDeadDeliveries(db, otherTenant)).toBe(0);
      expect(await purgeDeadDelivery(db, mine?.id as string)).toBe(true);
      expect(await purgeDeadDelivery(db, mine?.id as string)).toBe(false);
      // A tenant's whole DLQ at once.
      const again = await vault.core.db.transaction((tx) =>
        vault.core.events.publish(tx, {
          id: `evt_${randomBase62(22)}`,
          tenantId: vault.tenantId,
          type: "token.created",
          createdAt: clock.now(),
          data: { token: `tok_${randomBase62(22)}` },
        }),
      );
      expect(again).toBeGreaterThan(0);
      await kill();
      expect(await purgeAllDeadDeliveries(db, vault.tenantId)).toBeGreaterThanOrEqual(1);
      expect(await listDeadDeliveries(db, { tenantId: vault.tenantId, limit: 500 })).toEqual([]);
    });
  });
}
