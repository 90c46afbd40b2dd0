import { describe, expect, it } from "vitest";
import { DecryptionError } from "../../../src/crypto/decryption-error.js";

describe("DecryptionError", () => {
  it("has a fixed message and code and no cause", () => {
    const err = new DecryptionError();
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toBe("decryption failed");
    expect(err.code).toBe("DECRYPTION_FAILED");
    expect(err.name).toBe("DecryptionError");
    expect(Object.hasOwn(err, "cause")).toBe(false);
  });

  it("cannot be given a detail, even by an untyped caller", () => {
    const Untyped = DecryptionError as unknown as new (
      message: string,
      options: { cause: unknown },
    ) => DecryptionError;
    const err = new Untyped("tag mismatch at byte 7", { cause: new Error("inner") });
    expect(err.message).toBe("decryption failed");
    expect(Object.hasOwn(err, "cause")).toBe(false);
  });

  it("serializes without internals", () => {
    const err = new DecryptionError();
    expect(JSON.parse(JSON.stringify(err))).toEqual({
      code: "DECRYPTION_FAILED",
      name: "DecryptionError",
    });
  });
});
