import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backoffMs } from "../../../src/queue/queue-table.js";
import { EventDestinations } from "../../../src/services/webhooks/outbound/event-destinations.js";
import {
  standardWebhookSecret,
  verifyStandardWebhook,
} from "../../../src/webhooks/signatures/standard-webhooks.js";
import {
  auditRows,
  auth,
  CARDS,
  expectFieldError,
  expectNoPan,
  expectProblem,
  randomBase62,
  tokenizeBody,
} from "../../support/api-fixtures.js";
import { DRIVERS } from "../../support/databases.js";
import { ManualClock } from "../../support/redis.js";
import type { TestVault } from "../../support/vault-harness.js";
import { startTestVault } from "../../support/vault-harness.js";
import {
  INTERNAL_HOST,
  type MerchantReceiver,
  startMerchantReceiver,
} from "./merchant-receiver.js";

const MAX_ATTEMPTS = 3;
const RETRY = { maxAttempts: MAX_ATTEMPTS, baseDelayMs: 10_000, maxDelayMs: 3_600_000 };

interface DeliveryJson {
  id: string;
  destination_id: string;
  event_id: string;
  event_type: string;
  state: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  run_at: string;
  finished_at: string | null;
}

for (const driver of DRIVERS) {
  describe(`event deliveries to merchants on ${driver.name}`, () => {
    const clock = new ManualClock(Date.now());
    let receiver: MerchantReceiver;
    let vault: TestVault;
    let paths = 0;

    beforeAll(async () => {
      receiver = await startMerchantReceiver();
      vault = await startTestVault(driver, {
        clock,
        resolver: receiver.resolver.resolve,
        env: { ...receiver.env, PAYVAULT_WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS) },
      });
    });
    afterAll(async () => {
      await vault?.close();
      await receiver?.close();
    });

    /** A tenant with its own destination at a fresh receiver path. */
    const merchant = async (eventTypes: readonly string[] = ["token.created", "token.deleted"]) => {
      const { key } = await vault.newTenant(["tokens:write", "tokens:delete", "webhooks:manage"]);
      const path = `/hooks/${++paths}`;
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/event-destinations",
        headers: auth(key),
        payload: { url: receiver.url(path), event_types: eventTypes },
      });
      expect(res.statusCode, res.body).toBe(201);
      const { id, secret } = res.json() as { id: string; secret: string };
      return { key, path, destinationId: id, secret };
    };
    const tokenize = async (key: string, number: string = CARDS.visa) => {
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/tokens",
        headers: auth(key),
        payload: tokenizeBody(number, { dedupe: false }),
      });
      expect(res.statusCode, res.body).toBe(201);
      return (res.json() as { id: string }).id;
    };
    const pass = async () => {
      await vault.core.events.dispatchTokenEvents();
      return vault.core.events.deliverDue();
    };
    const deliveries = async (key: string, query = "") => {
      const res = await vault.app.inject({
        method: "GET",
        url: `/v1/event-deliveries${query}`,
        headers: auth(key),
      });
      expect(res.statusCode, res.body).toBe(200);
      return (res.json() as { data: DeliveryJson[] }).data;
    };
    const verify = (request: MerchantReceiver["https"]["requests"][number], secret: string) =>
      verifyStandardWebhook(request.body, request.headers, {
        secrets: [standardWebhookSecret(secret)],
        clock,
      });
    const metric = (outcome: string) => vault.core.metrics.valueOf("eventDeliveries", { outcome });

    it("a tokenization and a deletion reach the merchant as signed token events", async () => {
      const m = await merchant();
      const doneBefore = await metric("done");
      const token = await tokenize(m.key);
      const removed = await vault.app.inject({
        method: "DELETE",
        url: `/v1/tokens/${token}`,
        headers: auth(m.key),
      });
      expect(removed.statusCode, removed.body).toBe(204);
      await pass();

      const received = receiver.received(m.path);
      expect(received).toHaveLength(2);
      const bodies = received.map((r) => JSON.parse(r.body.toString("utf8")));
      expect(bodies.map((b) => b.type).sort()).toEqual(["token.created", "token.deleted"]);
      for (const [i, request] of received.entries()) {
        expect(request.method).toBe("POST");
        expect(request.headers["content-type"]).toBe("application/json");
        expect(request.headers["webhook-id"]).toMatch(/^evt_/);
        expect(verify(request, m.secret)).toMatchObject({ ok: true });
        expect(bodies[i]).toEqual({
          type: bodies[i].type,
          timestamp: expect.any(String),
          data: { token },
        });
        // A body edited in transit no longer verifies.
        const edited = {
          ...request,
          body: Buffer.from(request.body.toString().replace(token, "tok_x")),
        };
        expect(verify(edited, m.secret)).toMatchObject({ ok: false, reason: "signature_mismatch" });
        expectNoPan(request.body.toString("utf8"), CARDS.visa);
      }
      // The webhook-id is the audit event's id: the merchant dedupes on it.
      const created = (await auditRows(vault, "token.create")).find((e) => e.object_id === token);
      expect(received.map((r) => r.headers["webhook-id"])).toContain(created?.id);

      const listed = await deliveries(m.key, "?state=done");
      expect(listed).toHaveLength(2);
      expect(listed[0]).toMatchObject({
        state: "done",
        attempts: 1,
        last_status: 200,
        last_error: null,
      });
      expect(await metric("done")).toBe(doneBefore + 2);
      // Nothing more to send: a second pass delivers nothing again.
      expect(await pass()).toBe(0);
      expect(receiver.received(m.path)).toHaveLength(2);
      expectNoPan(vault.logs.text, CARDS.visa);
    });

    it("during a rotation's overlap both secrets verify; after it, only the new one", async () => {
      const m = await merchant(["token.created"]);
      const res = await vault.app.inject({
        method: "POST",
        url: `/v1/event-destinations/${m.destinationId}/rotate-secret`,
        headers: auth(m.key),
        payload: { overlap_seconds: 3600 },
      });
      expect(res.statusCode, res.body).toBe(200);
      const fresh = (res.json() as { secret: string }).secret;
      await tokenize(m.key);
      await pass();
      const [during] = receiver.received(m.path);
      expect(String(during?.headers["webhook-signature"]).split(" ")).toHaveLength(2);
      expect(verify(during as never, m.secret)).toMatchObject({ ok: true });
      expect(verify(during as never, fresh)).toMatchObject({ ok: true });

      clock.advance(3_600_000);
      await tokenize(m.key, CARDS.mastercard);
      await pass();
      const after = receiver.received(m.path)[1];
      expect(String(after?.headers["webhook-signature"]).split(" ")).toHaveLength(1);
      expect(verify(after as never, fresh)).toMatchObject({ ok: true });
      expect(verify(after as never, m.secret)).toMatchObject({
        ok: false,
        reason: "signature_mismatch",
      });
    });

    it("retries a failing endpoint with backoff, dead-letters it after the last attempt; replay delivers it", async () => {
      const m = await merchant(["token.created"]);
      receiver.statuses.set(m.path, 503);
      const retryBefore = await metric("retry");
      const deadBefore = await metric("dead");
      await tokenize(m.key);
      await pass();
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const [delivery] = await deliveries(m.key, `?destination_id=${m.destinationId}`);
        expect(delivery).toMatchObject({
          attempts: attempt,
          last_status: 503,
          last_error: "HTTP_503",
        });
        expect(receiver.received(m.path)).toHaveLength(attempt);
        if (attempt === MAX_ATTEMPTS) {
          expect(delivery).toMatchObject({ state: "dead" });
          expect(delivery?.finished_at).toBe(clock.now().toISOString());
          break;
        }
        // Equal jitter: at least half the doubled delay, at most all of it.
        const nominal = RETRY.baseDelayMs * 2 ** (attempt - 1);
        const wait = Date.parse(delivery?.run_at as string) - clock.now().getTime();
        expect(delivery?.state).toBe("queued");
        expect(wait).toBeGreaterThanOrEqual(nominal / 2);
        expect(wait).toBeLessThanOrEqual(nominal);
        expect(backoffMs(attempt, RETRY, () => 0)).toBe(nominal / 2);
        // Not due yet: a pass now sends nothing.
        clock.advance(wait - 1);
        expect(await vault.core.events.deliverDue()).toBe(0);
        clock.advance(1);
        expect(await vault.core.events.deliverDue()).toBe(1);
      }
      expect(await metric("retry")).toBe(retryBefore + MAX_ATTEMPTS - 1);
      expect(await metric("dead")).toBe(deadBefore + 1);
      const [dead] = await deliveries(m.key, "?state=dead");
      expect(dead?.destination_id).toBe(m.destinationId);
      // Dead letters stay put.
      clock.advance(86_400_000);
      expect(await vault.core.events.deliverDue()).toBe(0);

      receiver.statuses.delete(m.path);
      const replay = await vault.app.inject({
        method: "POST",
        url: `/v1/event-deliveries/${dead?.id}/replay`,
        headers: auth(m.key),
      });
      expect(replay.statusCode, replay.body).toBe(200);
      expect(replay.json()).toMatchObject({ state: "queued", attempts: 0, finished_at: null });
      expect(await vault.core.events.deliverDue()).toBe(1);
      const [done] = await deliveries(m.key, `?destination_id=${m.destinationId}`);
      expect(done).toMatchObject({ state: "done", attempts: 1, last_status: 200 });
      expect(verify(receiver.received(m.path).at(-1) as never, m.secret)).toMatchObject({
        ok: true,
      });
      // Only a dead delivery is replayed or purged.
      for (const method of ["POST", "DELETE"] as const) {
        const res = await vault.app.inject({
          method,
          url: `/v1/event-deliveries/${dead?.id}${method === "POST" ? "/replay" : ""}`,
          headers: auth(m.key),
        });
        expectProblem(res, "NOT_DEAD_LETTERED");
      }
      const replays = (await auditRows(vault, "event_delivery.replay")).filter(
        (e) => e.object_id === dead?.id,
      );
      expect(replays).toHaveLength(1);
    });

    it("purges a dead delivery", async () => {
      const m = await merchant(["token.created"]);
      receiver.statuses.set(m.path, 500);
      await tokenize(m.key);
      await pass();
      for (let i = 1; i < MAX_ATTEMPTS; i++) {
        clock.advance(RETRY.maxDelayMs);
        await vault.core.events.deliverDue();
      }
      const [dead] = await deliveries(m.key, "?state=dead");
      expect(dead?.last_status).toBe(500);
      const res = await vault.app.inject({
        method: "DELETE",
        url: `/v1/event-deliveries/${dead?.id}`,
        headers: auth(m.key),
      });
      expect(res.statusCode, res.body).toBe(204);
      expect(await deliveries(m.key)).toHaveLength(0);
      const purges = (await auditRows(vault, "event_delivery.purge")).filter(
        (e) => e.object_id === dead?.id,
      );
      expect(purges).toHaveLength(1);
      expectProblem(
        await vault.app.inject({
          method: "DELETE",
          url: `/v1/event-deliveries/${dead?.id}`,
          headers: auth(m.key),
        }),
        "EVENT_DELIVERY_NOT_FOUND",
      );
    });

    it("SSRF: a name resolving to 10.0.0.1 passes registration but is refused at delivery and counted as a failure", async () => {
      const { key } = await vault.newTenant(["tokens:write", "webhooks:manage"]);
      expectFieldError(
        await vault.app.inject({
          method: "POST",
          url: "/v1/event-destinations",
          headers: auth(key),
          payload: { url: "https://10.0.0.1/hooks", event_types: ["*"] },
        }),
        "url",
        "DESTINATION_ADDRESS_REFUSED",
      );
      const path = `/hooks/internal-${randomBase62(6)}`;
      const created = await vault.app.inject({
        method: "POST",
        url: "/v1/event-destinations",
        headers: auth(key),
        payload: { url: receiver.url(path, INTERNAL_HOST), event_types: ["*"] },
      });
      expect(created.statusCode, created.body).toBe(201);
      const retryBefore = await metric("retry");
      const connections = receiver.https.connections();
      await tokenize(key);
      await pass();
      const [delivery] = await deliveries(key);
      expect(delivery).toMatchObject({
        state: "queued",
        attempts: 1,
        last_status: null,
        last_error: "ADDRESS_REFUSED",
      });
      expect(receiver.resolver.calls).toContain(INTERNAL_HOST);
      expect(receiver.https.connections()).toBe(connections);
      expect(await metric("retry")).toBe(retryBefore + 1);
    });

    it("payment events go to payment subscribers only; a payload with a card number is refused", async () => {
      const payments = await merchant(["payment.*"]);
      const tenantId = (
        await vault.core.db.query<{ tenant_id: string }>(
          "SELECT tenant_id FROM event_destinations WHERE id = $1",
          [payments.destinationId],
        )
      ).rows[0]?.tenant_id as string;
      await tokenize(payments.key);
      const event = {
        id: `evt_${randomBase62(22)}`,
        tenantId,
        type: "payment.charge.succeeded",
        createdAt: clock.now(),
        data: { charge: "ch_123", amount: 1000 },
      };
      expect(await vault.core.db.transaction((tx) => vault.core.events.publish(tx, event))).toBe(1);
      // Publishing the same event again queues nothing.
      expect(await vault.core.db.transaction((tx) => vault.core.events.publish(tx, event))).toBe(0);
      await expect(
        vault.core.db.transaction((tx) =>
          vault.core.events.publish(tx, {
            ...event,
            id: `evt_${randomBase62(22)}`,
            data: { note: `card ${CARDS.visa}` },
          }),
        ),
      ).rejects.toThrow(RangeError);
      await pass();
      const received = receiver.received(payments.path);
      expect(received).toHaveLength(1);
      expect(JSON.parse(received[0]?.body.toString() as string)).toMatchObject({
        type: "payment.charge.succeeded",
        data: { charge: "ch_123", amount: 1000 },
      });
      expect(received[0]?.headers["webhook-id"]).toBe(event.id);
    });

    it("two dispatchers at once (two nodes) queue each token event once", async () => {
      const m = await merchant(["token.created"]);
      const numbers = [CARDS.visa, CARDS.visa2, CARDS.mastercard, CARDS.amex, CARDS.discover];
      const tokens = await Promise.all(numbers.map((n) => tokenize(m.key, n)));
      const node2 = new EventDestinations(vault.core.events.deps);
      await Promise.all([
        vault.core.events.dispatchTokenEvents(2),
        node2.dispatchTokenEvents(2),
        vault.core.events.dispatchTokenEvents(2),
        node2.dispatchTokenEvents(2),
      ]);
      // Until the cursor has passed them all (each pass reads at most 2 events).
      for (let i = 0; i < 10 && (await node2.dispatchTokenEvents(2)) > 0; i++);
      const { rows } = await vault.core.db.query<{ event_id: string; n: number }>(
        `SELECT event_id, count(*)::int AS n FROM event_deliveries
          WHERE destination_id = $1 GROUP BY event_id`,
        [m.destinationId],
      );
      expect(rows).toHaveLength(tokens.length);
      expect(rows.every((row) => row.n === 1)).toBe(true);
    });

    it("a tenant's token events before it has a destination are not delivered later", async () => {
      const { key } = await vault.newTenant(["tokens:write", "webhooks:manage"]);
      await tokenize(key);
      await vault.core.events.dispatchTokenEvents();
      const path = `/hooks/late-${randomBase62(6)}`;
      const res = await vault.app.inject({
        method: "POST",
        url: "/v1/event-destinations",
        headers: auth(key),
        payload: { url: receiver.url(path), event_types: ["*"] },
      });
      expect(res.statusCode, res.body).toBe(201);
      await pass();
      expect(receiver.received(path)).toHaveLength(0);
      expectNoPan(vault.logs.text, ...Object.values(CARDS));
    });
  });
}
