import { isIPv4, isIPv6 } from "node:net";

/**
 * An IP address reduced to an unsigned integer: 32 bits for IPv4, 128 bits for IPv6. Parsing
 * is deliberately strict: only canonical dotted-quad IPv4 (`net.isIPv4`: no octal, hex or
 * short forms) and RFC 4291 §2.2 IPv6 text (a zone id, `%eth0`, is dropped first).
 */
export type IpAddress =
  | { readonly family: 4; readonly value: number }
  | { readonly family: 6; readonly value: bigint };

/** Strips `[...]` (as WHATWG URL `hostname` keeps them) and an RFC 6874 zone id. */
function bare(text: string): string {
  const unbracketed = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const zone = unbracketed.indexOf("%");
  return zone === -1 ? unbracketed : unbracketed.slice(0, zone);
}

function ipv4Value(text: string): number {
  const [a = 0, b = 0, c = 0, d = 0] = text.split(".").map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function ipv6Value(text: string): bigint {
  let groups = text;
  let tail: number[] = [];
  const lastColon = groups.lastIndexOf(":");
  if (groups.includes(".", lastColon)) {
    // RFC 4291 §2.2 form 3: the low 32 bits written as a dotted quad.
    const v4 = ipv4Value(groups.slice(lastColon + 1));
    tail = [v4 >>> 16, v4 & 0xffff];
    groups = groups.slice(0, lastColon + 1);
    if (groups.endsWith(":") && !groups.endsWith("::")) groups = groups.slice(0, -1);
  }
  const [head = "", rest] = groups.split("::");
  const parse = (part: string): number[] =>
    part === "" ? [] : part.split(":").map((group) => Number.parseInt(group, 16));
  const left = parse(head);
  const right = [...(rest === undefined ? [] : parse(rest)), ...tail];
  const fill = new Array<number>(8 - left.length - right.length).fill(0);
  const all = rest === undefined ? [...left, ...right] : [...left, ...fill, ...right];
  return all.reduce((acc, group) => (acc << 16n) | BigInt(group), 0n);
}

/** Parses an IP literal, or returns undefined for anything that is not one. */
export function parseIp(text: string): IpAddress | undefined {
  const candidate = bare(text);
  if (isIPv4(candidate)) return { family: 4, value: ipv4Value(candidate) };
  if (isIPv6(candidate)) return { family: 6, value: ipv6Value(candidate) };
  return undefined;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join(".");
}

/** A CIDR block, parsed once from its text form. */
export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly contains: (address: IpAddress) => boolean;
}

export function cidr(text: string): Cidr {
  const [base = "", bitsText = ""] = text.split("/");
  const parsed = parseIp(base);
  const bits = Number(bitsText);
  if (parsed === undefined || !Number.isInteger(bits)) throw new Error(`bad CIDR ${text}`);
  if (parsed.family === 4) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const network = (parsed.value & mask) >>> 0;
    return {
      text,
      family: 4,
      contains: (a) => a.family === 4 && (a.value & mask) >>> 0 === network,
    };
  }
  const shift = BigInt(128 - bits);
  const network = parsed.value >> shift;
  return { text, family: 6, contains: (a) => a.family === 6 && a.value >> shift === network };
}
