import { BlockList, isIP } from "node:net";

/**
 * Client address ranges for API keys (PCI DSS 1.4.2-style restriction of where a credential may
 * be used from). Parsing and matching use node:net (isIP, BlockList) rather than hand-written
 * address arithmetic.
 */

/** The canonical form of a CIDR range ("10.0.0.0/8", "2001:db8::/32"), or undefined if invalid. */
export function parseCidr(text: string): string | undefined {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > max) return undefined;
  return `${address.toLowerCase()}/${prefix}`;
}

/** An IPv4 address carried as IPv4-mapped IPv6 (::ffff:a.b.c.d) is matched as IPv4. */
function unmapped(ip: string): string {
  const match = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return match === null ? ip : (match[1] as string);
}

/** A matcher for a set of canonical CIDR ranges; an empty set allows every address. */
export function cidrMatcher(ranges: readonly string[]): (ip: string) => boolean {
  if (ranges.length === 0) return () => true;
  const list = new BlockList();
  for (const range of ranges) {
    const [address, prefix] = range.split("/") as [string, string];
    list.addSubnet(address, Number(prefix), isIP(address) === 4 ? "ipv4" : "ipv6");
  }
  return (ip) => {
    const address = unmapped(ip);
    const family = isIP(address);
    if (family === 0) return false;
    return list.check(address, family === 4 ? "ipv4" : "ipv6");
  };
}
