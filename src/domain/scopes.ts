/**
 * API-key scopes (first cut; roles arrive with the access-control work). Least privilege
 * (PCI DSS 7.2.2): reading a masked card, revealing the full card and deleting are separate
 * grants; `admin` holds every tenant scope; `sys:admin` (key ceremonies, inventory, seal) is apart.
 */
export const SCOPES = [
  "tokens:write",
  "tokens:read",
  "tokens:reveal",
  "tokens:delete",
  "admin",
  "sys:admin",
] as const;

export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export function grants(held: ReadonlySet<Scope> | readonly Scope[], needed: Scope): boolean {
  const set = held instanceof Set ? held : new Set(held);
  // `admin` is a tenant's administrator; the vault's own keys and seal need `sys:admin`, which
  // the operator grants explicitly (the bootstrap key holds it; PCI DSS 7.2.2: least privilege).
  return set.has(needed) || (set.has("admin") && needed !== "sys:admin");
}
