import { expect } from "vitest";
import {
  JOSE_REJECTED_MESSAGE,
  type JoseRejectCode,
  JoseRejected,
  type JoseRejectReason,
} from "../../../src/jose/rejected.js";

/** Awaits `promise`, asserts the one generic JOSE error with nothing attached, returns it. */
export async function expectRejected(
  promise: Promise<unknown>,
  code: JoseRejectCode,
  reason?: JoseRejectReason,
): Promise<JoseRejected> {
  let thrown: unknown;
  try {
    await promise;
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(JoseRejected);
  const err = thrown as JoseRejected;
  expect(Object.getPrototypeOf(err)).toBe(JoseRejected.prototype);
  expect(err.message).toBe(JOSE_REJECTED_MESSAGE);
  expect(err.code).toBe(code);
  expect(Object.hasOwn(err, "cause")).toBe(false);
  expect(Object.keys(err)).not.toContain("reason");
  expect(JSON.stringify(err)).not.toContain(err.reason);
  if (reason !== undefined) expect(err.reason).toBe(reason);
  return err;
}

/** Runs `fn` and returns the refusal reason, or "accepted" when it resolved. */
export async function outcome(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return "accepted";
  } catch (err) {
    if (err instanceof JoseRejected) return err.reason;
    if (err instanceof Error && "reason" in err) return `jwk:${String(err.reason)}`;
    throw err;
  }
}
