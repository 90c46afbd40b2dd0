import { type Cidr, cidr, formatIpv4, type IpAddress, parseIp } from "./ip-address.js";

/**
 * Which outbound destinations the vault may connect to (docs/outbound.md). The vault only talks
 * to processors and merchants on the public internet, so every special-purpose block of the
 * IANA registries (RFC 6890, with the later additions cited per row) is refused: a token must
 * never be detokenized into a request aimed at the vault's own network, a cloud metadata
 * service or a neighbour's admin port (SSRF; PCI DSS 1.4.2 and 6.2.4).
 */
export type AddressCategory =
  | "loopback"
  | "unspecified"
  | "private"
  | "link-local"
  | "shared-address-space"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "benchmarking"
  | "protocol-assignment"
  | "discard-only"
  | "deprecated"
  | "tunnel"
  | "not-an-ip";

export type AddressVerdict =
  | { readonly allowed: true; readonly address: string; readonly family: 4 | 6 }
  | {
      readonly allowed: false;
      readonly address: string;
      readonly category: AddressCategory;
      /** The refused block, e.g. `169.254.0.0/16`, and the RFC that defines it. */
      readonly range: string;
      readonly rfc: string;
      /** The IPv4 address an IPv6 form carried, when that is what was refused. */
      readonly embeddedIpv4?: string;
    };

interface SpecialRange {
  readonly block: Cidr;
  readonly category: AddressCategory;
  readonly rfc: string;
}

const range = (text: string, category: AddressCategory, rfc: string): SpecialRange => ({
  block: cidr(text),
  category,
  rfc,
});

/** RFC 6890 §2.2.2 (IPv4 Special-Purpose Address Registry), first match wins. */
const IPV4_REFUSED: readonly SpecialRange[] = [
  range("0.0.0.0/8", "unspecified", "RFC 791, RFC 6890"),
  range("10.0.0.0/8", "private", "RFC 1918"),
  range("100.64.0.0/10", "shared-address-space", "RFC 6598"),
  range("127.0.0.0/8", "loopback", "RFC 1122"),
  range("169.254.0.0/16", "link-local", "RFC 3927"),
  range("172.16.0.0/12", "private", "RFC 1918"),
  range("192.0.0.0/24", "protocol-assignment", "RFC 6890"),
  range("192.0.2.0/24", "documentation", "RFC 5737"),
  range("192.88.99.0/24", "deprecated", "RFC 7526"),
  range("192.168.0.0/16", "private", "RFC 1918"),
  range("198.18.0.0/15", "benchmarking", "RFC 2544"),
  range("198.51.100.0/24", "documentation", "RFC 5737"),
  range("203.0.113.0/24", "documentation", "RFC 5737"),
  range("224.0.0.0/4", "multicast", "RFC 5771"),
  range("255.255.255.255/32", "broadcast", "RFC 919, RFC 8190"),
  range("240.0.0.0/4", "reserved", "RFC 1112"),
];

/**
 * RFC 6890 §2.2.3 (IPv6 Special-Purpose Address Registry) and later entries. Checked after the
 * IPv4 embeddings below; anything outside 2000::/3 that is left is not global unicast.
 */
const IPV6_REFUSED: readonly SpecialRange[] = [
  range("::/128", "unspecified", "RFC 4291"),
  range("::1/128", "loopback", "RFC 4291"),
  range("64:ff9b:1::/48", "private", "RFC 8215"),
  range("100::/64", "discard-only", "RFC 6666"),
  range("2001:2::/48", "benchmarking", "RFC 5180"),
  range("2001:db8::/32", "documentation", "RFC 3849"),
  range("2001::/23", "protocol-assignment", "RFC 2928, RFC 6890"),
  range("3fff::/20", "documentation", "RFC 9637"),
  range("fc00::/7", "private", "RFC 4193"),
  range("fe80::/10", "link-local", "RFC 4291"),
  range("fec0::/10", "deprecated", "RFC 3879"),
  range("ff00::/8", "multicast", "RFC 4291"),
];

const GLOBAL_UNICAST = cidr("2000::/3");

/**
 * IPv6 forms that carry an IPv4 address. The embedded address is judged by the IPv4 table, so
 * `::ffff:127.0.0.1` or `64:ff9b::a9fe:a9fe` cannot smuggle a refused IPv4 destination past it.
 * `passThrough`: a public embedded address makes the IPv6 address allowed (a dual-stack socket
 * or a DNS64 resolver produces these); otherwise the form is refused whatever it carries.
 */
interface Embedding {
  readonly block: Cidr;
  readonly rfc: string;
  readonly extract: (value: bigint) => readonly number[];
  readonly passThrough: boolean;
}

const low32 = (value: bigint): number => Number(value & 0xffffffffn);

const EMBEDDINGS: readonly Embedding[] = [
  // IPv4-mapped (RFC 4291 §2.5.5.2).
  { block: cidr("::ffff:0:0/96"), rfc: "RFC 4291", extract: (v) => [low32(v)], passThrough: true },
  // IPv4-translated (RFC 2765 §2.1), used by SIIT only.
  {
    block: cidr("::ffff:0:0:0/96"),
    rfc: "RFC 2765",
    extract: (v) => [low32(v)],
    passThrough: false,
  },
  // NAT64 well-known prefix (RFC 6052 §2.1).
  { block: cidr("64:ff9b::/96"), rfc: "RFC 6052", extract: (v) => [low32(v)], passThrough: true },
  // 6to4 (RFC 3056 §2): bits 16..47 are the site's IPv4 address.
  {
    block: cidr("2002::/16"),
    rfc: "RFC 3056",
    extract: (v) => [Number((v >> 80n) & 0xffffffffn)],
    passThrough: true,
  },
  // Teredo (RFC 4380 §4): the server's IPv4 address, then the client's, bit-inverted.
  {
    block: cidr("2001::/32"),
    rfc: "RFC 4380",
    extract: (v) => [Number((v >> 64n) & 0xffffffffn), ~low32(v) >>> 0],
    passThrough: false,
  },
];

const IPV4_COMPATIBLE = cidr("::/96");

function refuse(address: string, r: SpecialRange): AddressVerdict {
  return { allowed: false, address, category: r.category, range: r.block.text, rfc: r.rfc };
}

function classifyIpv4(address: string, ip: IpAddress): AddressVerdict {
  const hit = IPV4_REFUSED.find((r) => r.block.contains(ip));
  return hit === undefined ? { allowed: true, address, family: 4 } : refuse(address, hit);
}

function classifyEmbedded(address: string, embedding: Embedding, value: bigint): AddressVerdict {
  for (const v4 of embedding.extract(value)) {
    const inner = classifyIpv4(formatIpv4(v4), { family: 4, value: v4 });
    if (!inner.allowed) return { ...inner, address, embeddedIpv4: inner.address };
  }
  if (embedding.passThrough) return { allowed: true, address, family: 6 };
  const category = embedding.block.text === "2001::/32" ? "tunnel" : "deprecated";
  return { allowed: false, address, category, range: embedding.block.text, rfc: embedding.rfc };
}

/** Classifies one IP literal (IPv4 dotted quad or IPv6 text, brackets and zone id allowed). */
export function classifyAddress(address: string): AddressVerdict {
  const ip = parseIp(address);
  if (ip === undefined) {
    return { allowed: false, address, category: "not-an-ip", range: "", rfc: "" };
  }
  if (ip.family === 4) return classifyIpv4(address, ip);
  const embedding = EMBEDDINGS.find((e) => e.block.contains(ip));
  if (embedding !== undefined) return classifyEmbedded(address, embedding, ip.value);
  const hit = IPV6_REFUSED.find((r) => r.block.contains(ip));
  if (hit !== undefined) return refuse(address, hit);
  if (IPV4_COMPATIBLE.contains(ip)) {
    // IPv4-compatible (RFC 4291 §2.5.5.1), deprecated: refused, reporting what it carried.
    const compatible = { block: IPV4_COMPATIBLE, rfc: "RFC 4291", passThrough: false };
    return classifyEmbedded(address, { ...compatible, extract: (v) => [low32(v)] }, ip.value);
  }
  if (!GLOBAL_UNICAST.contains(ip)) {
    return {
      allowed: false,
      address,
      category: "reserved",
      range: "outside 2000::/3",
      rfc: "RFC 4291",
    };
  }
  return { allowed: true, address, family: 6 };
}

export type HostNameVerdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly category: "metadata-name" | "special-use-name" };

/** Cloud instance metadata services by name (GCP, AWS, OpenStack), refused before any lookup. */
const METADATA_NAMES: ReadonlySet<string> = new Set([
  "metadata.google.internal",
  "metadata.goog",
  "metadata",
  "instance-data",
  "instance-data.ec2.internal",
]);

/**
 * Special-use and private-use names that never denote a public processor: RFC 6761 §6.3
 * (`localhost`), RFC 6762 (`.local`, mDNS), RFC 8375 (`home.arpa`), ICANN's 2024 reservation of
 * `.internal`, and the conventional `localdomain`.
 */
const SPECIAL_USE_SUFFIXES: readonly string[] = [
  "localhost",
  "local",
  "internal",
  "home.arpa",
  "localdomain",
];

/**
 * Refuses a host name by its text. Single-label names are refused too: the system resolver
 * would complete them with the host's search domains (resolv.conf), i.e. inside the network.
 * The addresses a permitted name resolves to are still checked one by one.
 */
export function classifyHostName(hostName: string): HostNameVerdict {
  const name = hostName.toLowerCase().replace(/\.$/, "");
  if (METADATA_NAMES.has(name)) return { allowed: false, category: "metadata-name" };
  const special = SPECIAL_USE_SUFFIXES.some((s) => name === s || name.endsWith(`.${s}`));
  if (special || !name.includes(".")) return { allowed: false, category: "special-use-name" };
  return { allowed: true };
}
