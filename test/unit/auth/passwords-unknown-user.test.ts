import * as crypto from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { hashPassword, verifyPassword } from "../../../src/auth/passwords.js";

// Counts the scrypt runs and their parameters, calling through to the real function.
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return { ...real, scrypt: vi.fn(real.scrypt) };
});

describe("verifyPassword for a user that does not exist (issue 5: no timing oracle)", () => {
  it("runs scrypt once, with the same parameters as for a real user", async () => {
    const scrypt = vi.mocked(crypto.scrypt);
    const encoded = await hashPassword("a real password 1");
    scrypt.mockClear();

    expect((await verifyPassword("a real password 1", encoded)).ok).toBe(true);
    expect((await verifyPassword("a real password 1", undefined)).ok).toBe(false);

    expect(scrypt).toHaveBeenCalledTimes(2);
    const [real, dummy] = scrypt.mock.calls;
    // (password, salt, keylen, options, callback): same key length and cost, another salt.
    expect(dummy![2]).toBe(real![2]);
    expect(dummy![3]).toEqual(real![3]);
    expect(Buffer.from(dummy![1] as Uint8Array).length).toBe(
      Buffer.from(real![1] as Uint8Array).length,
    );
  });
});
