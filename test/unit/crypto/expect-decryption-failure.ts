import { expect } from "vitest";
import { DecryptionError } from "../../../src/crypto/decryption-error.js";

/**
 * Runs `fn`, asserts it threw the one generic decryption error with nothing
 * attached, and returns that error for further comparison.
 */
export function expectDecryptionFailure(fn: () => unknown): DecryptionError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(DecryptionError);
  const err = thrown as DecryptionError;
  expect(Object.getPrototypeOf(err)).toBe(DecryptionError.prototype);
  expect(err.name).toBe("DecryptionError");
  expect(err.message).toBe("decryption failed");
  expect(err.code).toBe("DECRYPTION_FAILED");
  expect(Object.hasOwn(err, "cause")).toBe(false);
  expect(err.cause).toBeUndefined();
  return err;
}
