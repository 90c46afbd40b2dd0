import * as zlib from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc32, crc32IsNative, crc32Portable } from "../../../src/webhooks/signatures/crc32.js";
import { loadWebhookVectors } from "./fixtures.js";

interface Crc32File {
  source: string;
  tests: { ascii: string; crc: string }[];
}

const vectors = loadWebhookVectors<Crc32File>("crc32.json");

describe("CRC-32 (the PayPal signed string's body digest)", () => {
  it("carries its source, including the catalogue check value", () => {
    expect(vectors.source).toMatch(/CRC-32\/ISO-HDLC/);
    expect(vectors.tests.find((t) => t.ascii === "123456789")?.crc).toBe("cbf43926");
  });

  it.each(vectors.tests)("crc32($ascii) = 0x$crc, portable and selected", ({ ascii, crc }) => {
    const data = Buffer.from(ascii, "ascii");
    expect(crc32Portable(data)).toBe(Number.parseInt(crc, 16));
    expect(crc32(data)).toBe(Number.parseInt(crc, 16));
  });

  it("returns an unsigned value (the check value is above 2^31)", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(3421780262);
  });

  it("uses node:zlib when this Node has it", () => {
    expect(crc32IsNative).toBe(typeof (zlib as { crc32?: unknown }).crc32 === "function");
  });

  it("the portable version agrees with the selected one on any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        expect(crc32Portable(bytes)).toBe(crc32(bytes));
      }),
    );
  });
});
