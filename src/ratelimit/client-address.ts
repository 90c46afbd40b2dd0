import { isIP } from "node:net";

/**
 * The part of a client address a per-address limit counts: an IPv4 address as is (an IPv4-mapped
 * IPv6 address as its IPv4 form), an IPv6 address by its /64. A single IPv6 subscriber or
 * server is routinely given a whole /64 (RFC 6177, RFC 7421), so counting /128s would hand one
 * client 2^64 fresh buckets. Anything else (a Unix socket, no address) counts as "unknown".
 */
export function addressBucketOf(ip: string | undefined): string {
  if (ip === undefined) return "unknown";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped !== null) return mapped[1] as string;
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family !== 6) return "unknown";
  return `${ipv6Groups(ip).slice(0, 4).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (zone dropped, `::` expanded), lowercase. */
function ipv6Groups(ip: string): string[] {
  const [address = ""] = ip.toLowerCase().split("%");
  const [head = "", tail] = address.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":"));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  // An embedded IPv4 tail (::a.b.c.d forms) lies in the last 32 bits: beyond the /64.
  const missing = 8 - left.length - right.length;
  const all = [...left, ...Array<string>(Math.max(0, missing)).fill("0"), ...right];
  return all.map((group) => (group.includes(".") ? "0" : group.replace(/^0+(?=.)/, "")));
}
