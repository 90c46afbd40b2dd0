import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TENANT_SCOPES } from "../../src/domain/scopes.js";
import { createLogger } from "../../src/log/logger.js";
import { DRIVERS } from "../support/databases.js";
import {
  bearer,
  CARDS,
  card,
  EXP_YEAR,
  grouped,
  grouped465,
  INVALID_LUHN,
  keyIdOf,
  panSpellings,
} from "../support/session-fixtures.js";
import type { TestVault } from "../support/vault-harness.js";
import { LogCapture, startTestVault } from "../support/vault-harness.js";

/** Every card number this file sends anywhere: none of them may reach a log line. */
const USED_PANS: readonly string[] = [...Object.values(CARDS), ...INVALID_LUHN];

interface Sent {
  readonly requestId: string;
  readonly method: string;
  readonly route: string;
  readonly status: number;
  /** Present when the request was authenticated (it passed the auth hook). */
  readonly principal: { tenant: string; keyId: string } | undefined;
  readonly response: LightMyRequestResponse;
  /** Successful reveals carry the card by design; every other response must not. */
  readonly mayHoldCard: boolean;
}

interface LogLine {
  level: number;
  msg: string;
  request_id?: string;
  method?: string;
  route?: string;
  status?: number;
  duration_ms?: number;
  tenant?: string;
  key_id?: string;
}

function foundPans(text: string): string[] {
  return USED_PANS.flatMap((pan) => panSpellings(pan).filter((s) => text.includes(s)));
}

for (const driver of DRIVERS) {
  describe(`log scan over a whole session on ${driver.name}`, () => {
    let vault: TestVault;
    const sent: Sent[] = [];
    let admin: { key: string; principal: { tenant: string; keyId: string } };

    async function send(
      options: InjectOptions,
      expected: {
        status: number;
        route: string;
        authenticated?: { key: string; tenant: string } | undefined;
        mayHoldCard?: boolean;
      },
    ): Promise<LightMyRequestResponse> {
      const response = await vault.app.inject(options);
      expect(response.statusCode, `${options.method} ${options.url}: ${response.body}`).toBe(
        expected.status,
      );
      const requestId = response.headers["x-request-id"];
      expect(typeof requestId).toBe("string");
      sent.push({
        requestId: String(requestId),
        method: String(options.method),
        route: expected.route,
        status: expected.status,
        principal:
          expected.authenticated === undefined
            ? undefined
            : {
                tenant: expected.authenticated.tenant,
                keyId: keyIdOf(expected.authenticated.key),
              },
        response,
        mayHoldCard: expected.mayHoldCard === true,
      });
      return response;
    }

    const tokenize = (payload: object, status = 201, headers: Record<string, string> = {}) =>
      send(
        {
          method: "POST",
          url: "/v1/tokens",
          headers: { ...bearer(admin.key), ...headers },
          payload,
        },
        {
          status,
          route: "/v1/tokens",
          authenticated: { key: admin.key, tenant: admin.principal.tenant },
        },
      );

    const rawTokenize = (body: string | Buffer, contentType: string, status: number) =>
      send(
        {
          method: "POST",
          url: "/v1/tokens",
          headers: { ...bearer(admin.key), "content-type": contentType },
          payload: body,
        },
        {
          status,
          route: "/v1/tokens",
          authenticated: { key: admin.key, tenant: admin.principal.tenant },
        },
      );

    beforeAll(async () => {
      vault = await startTestVault(driver);
      admin = {
        key: vault.adminKey,
        principal: { tenant: vault.tenantId, keyId: keyIdOf(vault.adminKey) },
      };
    });
    afterAll(async () => vault?.close());

    it("runs a session of good and bad requests with the expected statuses", async () => {
      const A = { key: admin.key, tenant: admin.principal.tenant };
      const readOnlyKey = await vault.newKey(vault.tenantId, ["tokens:read"]);
      const revokedKey = await vault.newKey(vault.tenantId, ["tokens:read"]);
      expect(await vault.core.apiKeys.revoke(keyIdOf(revokedKey), "test")).toBe(true);
      const other = await vault.newTenant([...TENANT_SCOPES]);

      // Tokenize: plain, spaced, dashed (4-4-4-4 and Amex 4-6-5), 19 digits, card alias.
      const visa = (await tokenize({ card: card(CARDS.visa, { name: "Ada Lovelace" }) })).json<{
        id: string;
      }>();
      const mc = (
        await tokenize({ card: card(grouped(CARDS.mastercard, " ")), metadata: { order: "o-1" } })
      ).json<{ id: string }>();
      const amex = (await tokenize({ card: card(grouped465(CARDS.amex, "-")) })).json<{
        id: string;
      }>();
      await tokenize({ card: card(grouped(CARDS.discover, "-")), format: "card_alias" });
      await tokenize({ card: card(grouped(CARDS.unionpay19, " ")) });

      // Batch: good items in every spelling, and bad ones (Luhn, PAN in metadata, unknown field).
      const batch = await send(
        {
          method: "POST",
          url: "/v1/tokens/batch",
          headers: bearer(A.key),
          payload: {
            cards: [
              { card: card(CARDS.visaDebit) },
              { card: card(grouped(CARDS.visaClassic, " ")) },
              { card: card(grouped(CARDS.mastercard2Series, "-")) },
              { card: card(INVALID_LUHN[0]) },
              { card: card(CARDS.jcb), metadata: { note: `card ${CARDS.mastercardDebit}` } },
              { card: card(CARDS.unionpay), pan: CARDS.visaAlt },
              { card: card(grouped465(CARDS.amexAlt, " ")) },
            ],
          },
        },
        { status: 200, route: "/v1/tokens/batch", authenticated: A },
      );
      const statuses = batch.json<{ results: { status: number }[] }>().results.map((r) => r.status);
      expect(statuses).toEqual([201, 201, 201, 400, 400, 400, 201]);

      // Read, reveal, duplicate.
      await send(
        { method: "GET", url: `/v1/tokens/${visa.id}`, headers: bearer(A.key) },
        { status: 200, route: "/v1/tokens/:id", authenticated: A },
      );
      const revealed = await send(
        {
          method: "POST",
          url: `/v1/tokens/${visa.id}/reveal`,
          headers: bearer(A.key),
          payload: { purpose: "customer support" },
        },
        { status: 200, route: "/v1/tokens/:id/reveal", authenticated: A, mayHoldCard: true },
      );
      expect(revealed.json<{ card: { number: string } }>().card.number).toBe(CARDS.visa);
      await send(
        {
          method: "POST",
          url: `/v1/tokens/${amex.id}/reveal`,
          headers: bearer(A.key),
          payload: { purpose: "chargeback" },
        },
        { status: 200, route: "/v1/tokens/:id/reveal", authenticated: A, mayHoldCard: true },
      );
      const dup = await tokenize({ card: card(CARDS.visa, { name: "Ada Lovelace" }) }, 200);
      expect(dup.json<{ duplicate: boolean; id: string }>()).toMatchObject({
        duplicate: true,
        id: visa.id,
      });

      // Idempotent replay, and the same key with another body.
      const idem = { "idempotency-key": "log-scan-1" };
      const first = await tokenize({ card: card(CARDS.diners14) }, 201, idem);
      const replay = await tokenize({ card: card(CARDS.diners14) }, 201, idem);
      expect(replay.headers["idempotent-replayed"]).toBe("true");
      expect(replay.body).toBe(first.body);
      await tokenize({ card: card(CARDS.discoverAlt) }, 422, idem);
      // A validation failure under an idempotency key is not stored: the retry is evaluated anew.
      await tokenize({ card: card(INVALID_LUHN[1]) }, 400, { "idempotency-key": "log-scan-2" });
      await tokenize({ card: card(CARDS.visaAlt) }, 201, { "idempotency-key": "log-scan-2" });

      // Delete, then 404s (gone, another tenant's token, a card number as the id).
      await send(
        { method: "DELETE", url: `/v1/tokens/${visa.id}`, headers: bearer(A.key) },
        { status: 204, route: "/v1/tokens/:id", authenticated: A },
      );
      for (const [method, url] of [
        ["GET", `/v1/tokens/${visa.id}`],
        ["DELETE", `/v1/tokens/${visa.id}`],
        ["GET", `/v1/tokens/${CARDS.visa}`],
        ["DELETE", `/v1/tokens/${CARDS.mastercard}`],
        ["GET", `/v1/tokens/tok_missing?number=${CARDS.visaClassic}`],
      ] as const) {
        await send(
          { method, url, headers: bearer(A.key) },
          { status: 404, route: "/v1/tokens/:id", authenticated: A },
        );
      }
      for (const id of [visa.id, CARDS.amexAlt]) {
        await send(
          {
            method: "POST",
            url: `/v1/tokens/${id}/reveal`,
            headers: bearer(A.key),
            payload: { purpose: "support" },
          },
          { status: 404, route: "/v1/tokens/:id/reveal", authenticated: A },
        );
      }
      await send(
        { method: "GET", url: `/v1/tokens/${mc.id}`, headers: bearer(other.key) },
        {
          status: 404,
          route: "/v1/tokens/:id",
          authenticated: { ...other, tenant: other.tenantId },
        },
      );
      // A grouped number does not fit the id pattern (400); an unknown path is ROUTE_NOT_FOUND.
      await send(
        {
          method: "GET",
          url: `/v1/tokens/${grouped(CARDS.visa, "-")}`,
          headers: bearer(A.key),
        },
        { status: 400, route: "/v1/tokens/:id", authenticated: A },
      );
      await send(
        { method: "GET", url: `/v1/cards/${CARDS.visa}`, headers: bearer(A.key) },
        { status: 404, route: "(unmatched)" },
      );

      // Bad inputs: Luhn failures, expired, wrong type, malformed JSON with a PAN inside.
      for (const number of INVALID_LUHN) {
        const bad = await tokenize({ card: card(number) }, 400);
        expect(bad.json<{ errors: { code: string }[] }>().errors.map((e) => e.code)).toContain(
          "PAN_LUHN",
        );
      }
      await tokenize({ card: card(grouped(INVALID_LUHN[0], " ")) }, 400);
      await tokenize({ card: card(CARDS.visaDebit, { exp_year: 2020 }) }, 400);
      await rawTokenize(
        `{"card":{"number":${CARDS.visaDebit},"exp_month":12,"exp_year":${EXP_YEAR}}}`,
        "application/json",
        400,
      );
      await rawTokenize(
        `{"card":{"number":"${CARDS.visaAlt}","exp_month":12,`,
        "application/json",
        400,
      );
      await rawTokenize(
        `{"card": {"number": "${grouped(CARDS.mastercard, " ")}"}} trailing`,
        "application/json",
        400,
      );
      await rawTokenize(
        `{"card":{"number":"${grouped(CARDS.amex, "-")}",,}}`,
        "application/json",
        400,
      );
      // PAN in metadata (value and key), in an unknown field (value and name), in __proto__.
      const inMeta = await tokenize(
        { card: card(CARDS.jcb), metadata: { note: `order for ${CARDS.mastercardDebit}` } },
        400,
      );
      expect(inMeta.json<{ errors: { code: string }[] }>().errors.map((e) => e.code)).toContain(
        "METADATA_CONTAINS_PAN",
      );
      await tokenize({ card: card(CARDS.jcb), metadata: { [CARDS.mastercardPrepaid]: "x" } }, 400);
      await tokenize(
        { card: card(CARDS.jcb), metadata: { note: grouped(CARDS.mastercardPrepaid, "-") } },
        400,
      );
      const unknownValue = await tokenize({ card: card(CARDS.jcb), note: CARDS.visaClassic }, 400);
      expect(
        unknownValue.json<{ errors: { code: string; field: string }[] }>().errors,
      ).toContainEqual(expect.objectContaining({ code: "UNKNOWN_FIELD", field: "note" }));
      await tokenize({ card: { ...card(CARDS.jcb), cvv: CARDS.visaClassic } }, 400);
      await tokenize({ card: card(CARDS.jcb), [CARDS.visaClassic]: "pan as a field name" }, 400);
      await tokenize({ card: { ...card(CARDS.jcb), [CARDS.visaAlt]: "x" } }, 400);
      // A PAN as a metadata key whose value has the wrong type: the key is in the field's path.
      await tokenize({ card: card(CARDS.jcb), metadata: { [CARDS.unionpay]: 5 } }, 400);
      await send(
        {
          method: "POST",
          url: "/v1/tokens/batch",
          headers: bearer(A.key),
          payload: { cards: [{ card: card(CARDS.jcb), [CARDS.discoverAlt]: "x" }] },
        },
        { status: 200, route: "/v1/tokens/batch", authenticated: A },
      );
      await rawTokenize(
        `{"card":{"number":"${CARDS.visaDebit}","exp_month":12,"exp_year":${EXP_YEAR}},"__proto__":{"x":"${CARDS.visaDebit}"}}`,
        "application/json",
        400,
      );
      // Invalid UTF-8, wrong content type, body over the limit: each with card numbers inside.
      await rawTokenize(
        Buffer.concat([
          Buffer.from(`{"card":{"number":"${CARDS.unionpay}","exp_month":12,"name":"`),
          Buffer.from([0xff, 0xfe]),
          Buffer.from(`"}}`),
        ]),
        "application/json",
        400,
      );
      await rawTokenize(`number=${CARDS.discover}`, "text/plain", 415);
      await rawTokenize(
        JSON.stringify({
          card: card(CARDS.discover),
          metadata: { pad: `${CARDS.discover} `.repeat(1200) },
        }),
        "application/json",
        413,
      );
      // PAN in the reveal purpose: whatever the vault does, it must not be a 5xx (checked by
      // send) and the number must not be logged or stored (checked below).
      for (const purpose of [
        `refund ${CARDS.mastercardPrepaid}`,
        `refund ${grouped(CARDS.mastercardPrepaid, " ")}`,
      ]) {
        const response = await vault.app.inject({
          method: "POST",
          url: `/v1/tokens/${amex.id}/reveal`,
          headers: bearer(A.key),
          payload: { purpose },
        });
        expect(response.statusCode).toBeLessThan(500);
        sent.push({
          requestId: String(response.headers["x-request-id"]),
          method: "POST",
          route: "/v1/tokens/:id/reveal",
          status: response.statusCode,
          principal: { tenant: A.tenant, keyId: keyIdOf(A.key) },
          response,
          mayHoldCard: response.statusCode === 200,
        });
      }
      await send(
        {
          method: "POST",
          url: `/v1/tokens/${amex.id}/reveal`,
          headers: bearer(A.key),
          payload: { purpose: "x", pan: CARDS.visaDebit },
        },
        { status: 400, route: "/v1/tokens/:id/reveal", authenticated: A },
      );

      // Failed authentication, including a card number as the credential.
      for (const authorization of [
        `Bearer ${CARDS.visa}`,
        grouped(CARDS.visa, " "),
        `Bearer ${grouped(CARDS.visa, "-")}`,
        `Bearer pv_live_${CARDS.unionpay19}_${CARDS.visa}`,
        "Bearer pv_live_garbled",
      ]) {
        const denied = await send(
          { method: "GET", url: `/v1/tokens/${mc.id}`, headers: { authorization } },
          { status: 401, route: "/v1/tokens/:id" },
        );
        expect(denied.json<{ code: string }>().code).toBe("AUTH_INVALID");
      }
      await send(
        { method: "GET", url: `/v1/tokens/${mc.id}` },
        { status: 401, route: "/v1/tokens/:id" },
      );
      const revoked = await send(
        { method: "GET", url: `/v1/tokens/${mc.id}`, headers: bearer(revokedKey) },
        { status: 401, route: "/v1/tokens/:id" },
      );
      expect(revoked.json<{ code: string }>().code).toBe("AUTH_REVOKED");
      await send(
        {
          method: "POST",
          url: `/v1/tokens/${mc.id}/reveal`,
          headers: bearer(readOnlyKey),
          payload: { purpose: "curious" },
        },
        { status: 403, route: "/v1/tokens/:id/reveal" },
      );

      // A store error whose message quotes card numbers (as a driver error may): it must be
      // logged, and logged masked.
      await vault.core.db.exec(`
        CREATE FUNCTION pv_log_scan_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'refused card ${CARDS.visaDebit} / ${grouped(CARDS.visaDebit, " ")}'; END $$;
        CREATE TRIGGER pv_log_scan_refuse BEFORE INSERT ON tokens
          FOR EACH ROW EXECUTE FUNCTION pv_log_scan_refuse();`);
      try {
        await tokenize({ card: card(CARDS.amexAlt), dedupe: false }, 503);
      } finally {
        await vault.core.db.exec(
          "DROP TRIGGER pv_log_scan_refuse ON tokens; DROP FUNCTION pv_log_scan_refuse();",
        );
      }
      const failureLine = vault.logs.lines.find((l) => l.includes("refused card"));
      expect(failureLine, "the store error is logged").toBeDefined();
      expect(failureLine).toContain("400005******5556");
      expect(failureLine).toContain("4000 05** **** 5556");
    });

    it("logs no test card number, in any spelling, anywhere", () => {
      expect(vault.logs.lines.length).toBeGreaterThanOrEqual(sent.length);
      // USED_PANS includes the Luhn-failing numbers, which the scrubber would not mask: they
      // are absent only because request bodies and URLs are never logged.
      expect(foundPans(vault.logs.text)).toEqual([]);
    });

    it("echoes no card number in any response but a successful reveal", () => {
      const leaks = sent
        .filter((s) => !s.mayHoldCard)
        .flatMap((s) =>
          foundPans(s.response.body).map(
            (pan) => `${s.method} ${s.route} ${s.status}: ${pan} in ${s.response.body}`,
          ),
        );
      expect(leaks).toEqual([]);
    });

    it("stores no card number in clear in any table", async () => {
      const tables = ["tokens", "audit_events", "idempotency_keys", "api_keys", "tenants"];
      for (const table of tables) {
        const { rows } = await vault.core.db.query<{ t: string }>(
          `SELECT row_to_json(x)::text AS t FROM ${table} x`,
        );
        const text = rows.map((r) => r.t).join("\n");
        expect(foundPans(text), `table ${table}`).toEqual([]);
      }
    });

    it("writes exactly one request line per request, with its route, status and principal", () => {
      const lines = vault.logs.lines.map((l) => JSON.parse(l) as LogLine);
      const requestLines = lines.filter((l) => l.msg === "request");
      expect(requestLines).toHaveLength(sent.length);
      for (const s of sent) {
        const mine = requestLines.filter((l) => l.request_id === s.requestId);
        expect(mine, `${s.method} ${s.route} ${s.status}`).toHaveLength(1);
        const line = mine[0] as LogLine;
        expect(line).toMatchObject({ method: s.method, route: s.route, status: s.status });
        expect(typeof line.duration_ms).toBe("number");
        if (s.principal !== undefined) {
          expect(line.tenant).toBe(s.principal.tenant);
          expect(line.key_id).toBe(s.principal.keyId);
        } else {
          expect(line.tenant).toBeUndefined();
          expect(line.key_id).toBeUndefined();
        }
      }
    });
  });
}

describe("logger", () => {
  function logged(write: (logger: ReturnType<typeof createLogger>) => void): string {
    const capture = new LogCapture();
    const logger = createLogger("info", capture);
    write(logger);
    logger.flush();
    return capture.text;
  }

  it("masks a Luhn-valid number in a message, a field or an error, keeping BIN and last 4", () => {
    const text = logged((log) => {
      log.info(`charged ${CARDS.visa}`);
      log.info({ note: `typed as ${grouped(CARDS.mastercard, " ")}` }, "note");
      log.info({ ref: grouped465(CARDS.amex, "-") }, "amex");
      log.error({ err: new Error(`declined ${CARDS.unionpay19}`) }, "failed");
      log.warn({ list: [CARDS.discover] }, `and ${grouped(CARDS.jcb, "-")}`);
    });
    expect(text.split("\n")).toHaveLength(5);
    for (const pan of [CARDS.visa, CARDS.mastercard, CARDS.amex, CARDS.unionpay19]) {
      for (const spelling of panSpellings(pan)) expect(text).not.toContain(spelling);
    }
    expect(text).not.toContain(CARDS.discover);
    expect(text).not.toContain(grouped(CARDS.jcb, "-"));
    expect(text).toContain("charged 424242******4242");
    expect(text).toContain("5555 55** **** 4444");
    expect(text).toContain("3782-82****-*0005");
    expect(text).toContain("declined 620550*********0004");
    expect(text).toContain("601111******1117");
    expect(text).toContain("3566-00**-****-0505");
  });

  it("leaves numbers that are not card numbers alone", () => {
    const text = logged((log) => log.info({ orderId: INVALID_LUHN[0], count: 1234 }, "order"));
    expect(text).toContain(INVALID_LUHN[0]);
    expect(text).toContain('"count":1234');
  });

  it("censors the authorization header, card, number and cvc", () => {
    const text = logged((log) => {
      log.info({ req: { headers: { authorization: "Bearer pv_live_secretsecret" } } }, "a");
      log.info({ headers: { authorization: "Bearer pv_live_secretsecret" } }, "b");
      log.info({ authorization: "Bearer pv_live_secretsecret" }, "c");
      log.info({ card: { number: "0000", exp_month: 1 } }, "d");
      log.info({ payment: { card: { name: "Ada Lovelace" } } }, "e");
      log.info({ number: "0000-literal", cvc: "987" }, "f");
      log.info({ payment: { number: "1111-literal", cvc: "876" } }, "g");
    });
    const lines = text.split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(7);
    // The timestamps are left out: their milliseconds could read 987 or 876 by chance.
    const withoutTimes = lines.map(({ time: _time, ...rest }) => JSON.stringify(rest)).join("\n");
    expect(withoutTimes).not.toContain("secretsecret");
    expect(withoutTimes).not.toContain("Ada Lovelace");
    expect(withoutTimes).not.toContain("literal");
    expect(withoutTimes).not.toContain("987");
    expect(withoutTimes).not.toContain("876");
    expect(lines[0]).toMatchObject({ req: { headers: { authorization: "[redacted]" } } });
    expect(lines[1]).toMatchObject({ headers: { authorization: "[redacted]" } });
    expect(lines[2]).toMatchObject({ authorization: "[redacted]" });
    expect(lines[3]).toMatchObject({ card: "[redacted]" });
    expect(lines[4]).toMatchObject({ payment: { card: "[redacted]" } });
    expect(lines[5]).toMatchObject({ number: "[redacted]", cvc: "[redacted]" });
    expect(lines[6]).toMatchObject({ payment: { number: "[redacted]", cvc: "[redacted]" } });
  });
});
