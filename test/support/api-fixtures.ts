import { randomBytes } from "node:crypto";
import { expect } from "vitest";
import type { ErrorCode } from "../../src/errors/registry.js";
import { ERRORS } from "../../src/errors/registry.js";
import type { TestVault } from "./vault-harness.js";

/**
 * Shared helpers for the HTTP integration suites (tokens API, batch, idempotency, route
 * security, bad input). Card numbers are copied from ../shared/testdata/test-cards.json: the
 * networks' and processors' published test numbers, never real cards.
 */
export const CARDS = {
  visa: "4242424242424242",
  visa2: "4000056655665556",
  visa3: "4111111111111111",
  visa4: "4012888888881881",
  mastercard: "5555555555554444",
  mastercard2: "2223003122003222",
  mastercard3: "5200828282828210",
  mastercard4: "5105105105105100",
  amex: "378282246310005",
  amex2: "371449635398431",
  discover: "6011111111111117",
  discover2: "6011000990139424",
  diners14: "36227206271667",
  jcb: "3566002020360505",
  unionpay19: "6205500000000000004",
} as const;

/** The file's `invalid_luhn` numbers. */
export const INVALID_LUHN = ["4242424242424241", "5555555555554440", "378282246310006"] as const;

/** An independent Luhn check (not the vault's), so the tests do not trust the code under test. */
export function luhnValid(digits: string): boolean {
  if (!/^[0-9]+$/.test(digits)) return false;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** `partial` plus the digit that makes it pass Luhn. */
export function withCheckDigit(partial: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(`${partial}${d}`)) return `${partial}${d}`;
  throw new Error("unreachable");
}

/**
 * A Luhn-valid 15-digit number in Mastercard's range (derived from the 5555… test card).
 * Mastercard issues only 16-digit PANs, so this can never be a real card: it exists to test the
 * brand/length rule.
 */
export const MASTERCARD_15_DIGITS = withCheckDigit(CARDS.mastercard.slice(0, 14));

/** `4242 4242 4242 4242`: the number as printed on a card. */
export function spaced(digits: string): string {
  return digits.replace(/(\d{4})(?=\d)/g, "$1 ");
}

/** Expiry comfortably in the future, whatever today's date. */
export const EXP_YEAR = new Date().getUTCFullYear() + 3;
export const EXP_MONTH = 12;

export function cardOf(number: string, extra: Record<string, unknown> = {}) {
  return { number, exp_month: EXP_MONTH, exp_year: EXP_YEAR, ...extra };
}

export function tokenizeBody(number: string, extra: Record<string, unknown> = {}) {
  return { card: cardOf(number), ...extra };
}

export function auth(key: string): { authorization: string } {
  return { authorization: `Bearer ${key}` };
}

/** `pv_test_<id>_<secret>` → `key_<id>`. */
export function keyIdOf(apiKey: string): string {
  const match = /^pv_(?:live|test)_([0-9A-Za-z]{22})_[0-9A-Za-z]{43}$/.exec(apiKey);
  if (match === null) throw new Error("not an API key");
  return `key_${match[1]}`;
}

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export function randomBase62(length: number): string {
  return [...randomBytes(length)].map((b) => BASE62[b % 62]).join("");
}

/** A well-formed random token id that no test created. */
export function randomTokenId(): string {
  return `tok_${randomBase62(22)}`;
}

export const TOKEN_ID = /^tok_[0-9A-Za-z]{22}$/;

interface InjectResponse {
  readonly statusCode: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | number | undefined>;
  json(): unknown;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  request_id: string;
  errors?: { field: string; code: string; message: string }[];
}

const PROBLEM_KEYS = new Set(["type", "title", "status", "code", "detail", "request_id", "errors"]);

/**
 * Asserts an RFC 9457 problem from the registry: status, content type, `code`, the registry's
 * title, a request id that matches the response header, only the documented members (so never
 * a stack or an internal message).
 */
export function expectProblem(res: InjectResponse, code: ErrorCode): ProblemBody {
  const expectedStatus = ERRORS[code].status;
  expect(res.statusCode, res.body).toBe(expectedStatus);
  expect(String(res.headers["content-type"])).toMatch(/^application\/problem\+json/);
  const body = res.json() as ProblemBody;
  expect(body.code, res.body).toBe(code);
  expect(body.title).toBe(ERRORS[code].title);
  expect(body.status).toBe(expectedStatus);
  expect(body.request_id).toMatch(/^req_[0-9A-Za-z]+$/);
  expect(body.request_id).toBe(res.headers["x-request-id"]);
  for (const key of Object.keys(body))
    expect(PROBLEM_KEYS, `unexpected member ${key}`).toContain(key);
  expect(res.body).not.toMatch(/\bat .+\.(?:ts|js):\d+/);
  return body;
}

/** Asserts a VALIDATION_FAILED problem that names `field` with `fieldCode` (among possibly others). */
export function expectFieldError(
  res: InjectResponse,
  field: string,
  fieldCode: string,
): ProblemBody {
  const body = expectProblem(res, "VALIDATION_FAILED");
  expect(body.errors, res.body).toBeDefined();
  expect(body.errors, res.body).toContainEqual(
    expect.objectContaining({ field, code: fieldCode, message: expect.any(String) }),
  );
  return body;
}

/** The text never holds the number: not as digits, not grouped with spaces or dashes. */
export function expectNoPan(text: string, ...numbers: readonly string[]): void {
  for (const number of numbers) {
    const digits = number.replace(/[^0-9]/g, "");
    for (const form of new Set([
      number,
      digits,
      spaced(digits),
      spaced(digits).replaceAll(" ", "-"),
    ])) {
      if (form === "") continue;
      expect(text.includes(form), `the text holds a card number (${digits.length} digits)`).toBe(
        false,
      );
    }
  }
}

export async function countRows(
  vault: TestVault,
  sql: string,
  params: readonly unknown[] = [],
): Promise<number> {
  const { rows } = await vault.core.db.query<{ n: number | string }>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

export function tokenRowCount(vault: TestVault, tenantId?: string): Promise<number> {
  return tenantId === undefined
    ? countRows(vault, "SELECT count(*) AS n FROM tokens")
    : countRows(vault, "SELECT count(*) AS n FROM tokens WHERE tenant_id = $1", [tenantId]);
}

export function auditCount(vault: TestVault, action: string): Promise<number> {
  return countRows(vault, "SELECT count(*) AS n FROM audit_events WHERE action = $1", [action]);
}

export async function tokenExists(
  vault: TestVault,
  tenantId: string,
  id: string,
): Promise<boolean> {
  return (
    (await countRows(vault, "SELECT count(*) AS n FROM tokens WHERE tenant_id = $1 AND id = $2", [
      tenantId,
      id,
    ])) === 1
  );
}

export interface AuditRow {
  id: string;
  tenant_id: string | null;
  actor: string;
  action: string;
  object_id: string | null;
  outcome: string;
  details: Record<string, unknown>;
}

export async function auditRows(vault: TestVault, action: string): Promise<AuditRow[]> {
  const { rows } = await vault.core.db.query<AuditRow>(
    `SELECT id, tenant_id, actor, action, object_id, outcome, details
       FROM audit_events WHERE action = $1`,
    [action],
  );
  return rows.map((row) => ({
    ...row,
    details:
      typeof row.details === "string"
        ? (JSON.parse(row.details) as Record<string, unknown>)
        : row.details,
  }));
}

/** Tokenizes through the API with `key` and returns the response body (asserting 200/201). */
export async function tokenize(
  vault: TestVault,
  key: string,
  body: Record<string, unknown>,
): Promise<Record<string, unknown> & { id: string; fingerprint: string; duplicate: boolean }> {
  const res = await vault.app.inject({
    method: "POST",
    url: "/v1/tokens",
    headers: auth(key),
    payload: body,
  });
  expect([200, 201], res.body).toContain(res.statusCode);
  return res.json();
}
