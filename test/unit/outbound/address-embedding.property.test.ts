import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { classifyAddress } from "../../../src/outbound/address-policy.js";

const verdictOf = (address: string): string => {
  const v = classifyAddress(address);
  return v.allowed ? "allowed" : v.category;
};

const ipv4 = fc
  .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
  .map((octets) => octets.join("."));

const hex32 = (dotted: string): string => {
  const [a = 0, b = 0, c = 0, d = 0] = dotted.split(".").map(Number);
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
};

describe("IPv4 embedded in IPv6 is judged like the IPv4 address itself", () => {
  it("IPv4-mapped, dotted and hex spellings (RFC 4291 §2.5.5.2)", () => {
    fc.assert(
      fc.property(ipv4, (v4) => {
        expect(verdictOf(`::ffff:${v4}`)).toBe(verdictOf(v4));
        expect(verdictOf(`::ffff:${hex32(v4)}`)).toBe(verdictOf(v4));
      }),
      { numRuns: 2000 },
    );
  });

  it("NAT64 well-known prefix (RFC 6052)", () => {
    fc.assert(
      fc.property(ipv4, (v4) => {
        expect(verdictOf(`64:ff9b::${v4}`)).toBe(verdictOf(v4));
      }),
      { numRuns: 2000 },
    );
  });

  it("6to4 (RFC 3056), whatever the subnet and interface bits", () => {
    fc.assert(
      fc.property(ipv4, fc.nat(0xffff), (v4, subnet) => {
        expect(verdictOf(`2002:${hex32(v4)}:${subnet.toString(16)}::1`)).toBe(verdictOf(v4));
      }),
      { numRuns: 2000 },
    );
  });

  it("never allows an IPv6 form that carries a refused IPv4 address", () => {
    fc.assert(
      fc.property(ipv4, (v4) => {
        fc.pre(!classifyAddress(v4).allowed);
        for (const form of [`::${v4}`, `::ffff:0:${v4}`, `::ffff:${v4}`, `64:ff9b::${v4}`]) {
          expect(classifyAddress(form).allowed).toBe(false);
        }
      }),
    );
  });
});
