import { describe, expect, it } from "vitest";
import {
  type AddressCategory,
  classifyAddress,
  classifyHostName,
} from "../../../src/outbound/address-policy.js";

/** [address, expected]: "allowed" or the refusal category. Edges of every block included. */
const TABLE: readonly (readonly [string, "allowed" | AddressCategory])[] = [
  // Public IPv4, including the neighbours of refused blocks.
  ["8.8.8.8", "allowed"],
  ["1.1.1.1", "allowed"],
  ["93.184.215.14", "allowed"],
  ["1.0.0.0", "allowed"],
  ["9.255.255.255", "allowed"],
  ["11.0.0.0", "allowed"],
  ["100.63.255.255", "allowed"],
  ["100.128.0.0", "allowed"],
  ["126.255.255.255", "allowed"],
  ["128.0.0.0", "allowed"],
  ["169.253.255.255", "allowed"],
  ["169.255.0.0", "allowed"],
  ["172.15.255.255", "allowed"],
  ["172.32.0.0", "allowed"],
  ["192.0.1.0", "allowed"],
  ["192.0.3.0", "allowed"],
  ["192.167.255.255", "allowed"],
  ["192.169.0.0", "allowed"],
  ["198.17.255.255", "allowed"],
  ["198.20.0.0", "allowed"],
  ["223.255.255.255", "allowed"],
  // RFC 6890 §2.2.2 blocks, first and last address.
  ["0.0.0.0", "unspecified"],
  ["0.255.255.255", "unspecified"],
  ["10.0.0.0", "private"],
  ["10.0.0.1", "private"],
  ["10.255.255.255", "private"],
  ["100.64.0.0", "shared-address-space"],
  ["100.100.100.200", "shared-address-space"], // Alibaba Cloud metadata
  ["100.127.255.255", "shared-address-space"],
  ["127.0.0.0", "loopback"],
  ["127.0.0.1", "loopback"],
  ["127.255.255.255", "loopback"],
  ["169.254.0.0", "link-local"],
  ["169.254.169.254", "link-local"], // AWS, GCP, Azure metadata
  ["169.254.255.255", "link-local"],
  ["172.16.0.0", "private"],
  ["172.31.255.255", "private"],
  ["192.0.0.0", "protocol-assignment"],
  ["192.0.0.192", "protocol-assignment"], // Oracle Cloud metadata
  ["192.0.0.255", "protocol-assignment"],
  ["192.0.2.0", "documentation"],
  ["192.0.2.255", "documentation"],
  ["192.88.99.1", "deprecated"],
  ["192.168.0.0", "private"],
  ["192.168.255.255", "private"],
  ["198.18.0.0", "benchmarking"],
  ["198.19.255.255", "benchmarking"],
  ["198.51.100.7", "documentation"],
  ["203.0.113.255", "documentation"],
  ["224.0.0.0", "multicast"],
  ["239.255.255.255", "multicast"],
  ["240.0.0.0", "reserved"],
  ["255.255.255.254", "reserved"],
  ["255.255.255.255", "broadcast"],
  // Public IPv6.
  ["2606:4700:4700::1111", "allowed"],
  ["2001:4860:4860::8888", "allowed"],
  ["2a00:1450:4001:80b::200e", "allowed"],
  ["2001:200::1", "allowed"], // just past 2001::/23
  // RFC 6890 §2.2.3 blocks and later additions.
  ["::", "unspecified"],
  ["::1", "loopback"],
  ["[::1]", "loopback"],
  ["0:0:0:0:0:0:0:1", "loopback"],
  ["fc00::", "private"],
  ["fd00:ec2::254", "private"], // AWS IPv6 metadata
  ["fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "private"],
  ["fe80::", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["febf:ffff::1", "link-local"],
  ["fec0::1", "deprecated"],
  ["ff02::1", "multicast"],
  ["ff0e::1", "multicast"],
  ["100::1", "discard-only"],
  ["2001:db8::1", "documentation"],
  ["3fff::1", "documentation"],
  ["2001:2::1", "benchmarking"],
  ["2001:10::1", "protocol-assignment"],
  ["2001:20::1", "protocol-assignment"],
  ["64:ff9b:1::1", "private"],
  ["5f00::1", "reserved"],
  ["4000::1", "reserved"],
  ["1fff:ffff::1", "reserved"],
  // IPv4 inside IPv6: mapped, translated, compatible, NAT64, 6to4, Teredo.
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["::FFFF:169.254.169.254", "link-local"],
  ["::ffff:10.1.2.3", "private"],
  ["::ffff:8.8.8.8", "allowed"],
  ["::ffff:0:127.0.0.1", "loopback"],
  ["::ffff:0:8.8.8.8", "deprecated"],
  ["::127.0.0.1", "loopback"],
  ["::8.8.8.8", "deprecated"],
  ["64:ff9b::127.0.0.1", "loopback"],
  ["64:ff9b::a9fe:a9fe", "link-local"],
  ["64:ff9b::192.168.1.1", "private"],
  ["64:ff9b::8.8.8.8", "allowed"],
  ["2002:7f00:1::", "loopback"],
  ["2002:a9fe:a9fe::1", "link-local"],
  ["2002:0a00:0001::", "private"],
  ["2002:0808:0808::1", "allowed"],
  // Teredo: server 65.54.227.120, client 127.0.0.1 (inverted: 80ff:fffe).
  ["2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"],
  // Teredo: server 10.0.0.1.
  ["2001:0:a00:1:8000:63bf:f7f7:f7f7", "private"],
  // Teredo with public server and client (8.8.8.8): refused as a tunnel anyway.
  ["2001:0:4136:e378:8000:63bf:f7f7:f7f7", "tunnel"],
  // Not IP literals.
  ["2130706433", "not-an-ip"],
  ["0177.0.0.1", "not-an-ip"],
  ["0x7f.1", "not-an-ip"],
  ["127.1", "not-an-ip"],
  ["example.com", "not-an-ip"],
  ["", "not-an-ip"],
];

describe("classifyAddress", () => {
  it("covers enough of the registry to mean something", () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(60);
  });

  it.each(TABLE)("%s → %s", (address, expected) => {
    const verdict = classifyAddress(address);
    expect(verdict.allowed ? "allowed" : verdict.category).toBe(expected);
  });

  it("names the refused block and the RFC that defines it", () => {
    expect(classifyAddress("169.254.169.254")).toEqual({
      allowed: false,
      address: "169.254.169.254",
      category: "link-local",
      range: "169.254.0.0/16",
      rfc: "RFC 3927",
    });
  });

  it("reports the IPv4 address an IPv6 form carried", () => {
    expect(classifyAddress("64:ff9b::a9fe:a9fe")).toMatchObject({
      allowed: false,
      address: "64:ff9b::a9fe:a9fe",
      embeddedIpv4: "169.254.169.254",
      range: "169.254.0.0/16",
    });
  });

  it("reports the family of an allowed address", () => {
    expect(classifyAddress("8.8.8.8")).toEqual({ allowed: true, address: "8.8.8.8", family: 4 });
    expect(classifyAddress("::ffff:8.8.8.8")).toMatchObject({ allowed: true, family: 6 });
  });
});

describe("classifyHostName", () => {
  it.each([
    ["metadata.google.internal", "metadata-name"],
    ["METADATA.GOOGLE.INTERNAL.", "metadata-name"],
    ["metadata.goog", "metadata-name"],
    ["metadata", "metadata-name"],
    ["instance-data", "metadata-name"],
    ["localhost", "special-use-name"],
    ["api.localhost", "special-use-name"],
    ["printer.local", "special-use-name"],
    ["db.corp.internal", "special-use-name"],
    ["router.home.arpa", "special-use-name"],
    ["intranet", "special-use-name"],
  ] as const)("refuses %s (%s)", (name, category) => {
    expect(classifyHostName(name)).toEqual({ allowed: false, category });
  });

  it.each([
    "api.stripe.com",
    "api.processor.example",
    "internal.example.com",
    "localhost.example.com",
  ])("admits %s (its addresses are still checked)", (name) => {
    expect(classifyHostName(name)).toEqual({ allowed: true });
  });
});
