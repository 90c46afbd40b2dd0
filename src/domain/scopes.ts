/**
 * Scopes and roles (PCI DSS 7.2.1, 7.2.2: access by job function, least privilege). Every route
 * declares one scope in the route table (`src/http/route-table.ts`); a credential holds scopes,
 * never roles: a role is a named bundle that is expanded when a key or user is created, so a key's
 * rights never change behind its holder's back when a role is redefined.
 */
export const TENANT_SCOPES = [
  "tokens:write",
  "tokens:read",
  "tokens:reveal",
  "tokens:delete",
  "capture",
  "proxy:forward",
  "webhooks:manage",
  "audit:read",
  "keys:manage",
  "tenant:admin",
] as const;

/** The vault's own administration (key ceremonies, custodians, key inventory): not a tenant's. */
export const SYSTEM_SCOPES = ["sys:admin"] as const;

export const SCOPES = [...TENANT_SCOPES, ...SYSTEM_SCOPES] as const;

export type Scope = (typeof SCOPES)[number];

export function isSystemScope(scope: Scope): boolean {
  return (SYSTEM_SCOPES as readonly string[]).includes(scope);
}

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** A credential's scopes grant exactly themselves: no scope implies another (PCI DSS 7.2.2). */
export function grants(held: ReadonlySet<Scope> | readonly Scope[], needed: Scope): boolean {
  return held instanceof Set ? held.has(needed) : (held as readonly Scope[]).includes(needed);
}

/**
 * Roles by job function. `tenant_admin` manages the tenant (keys, users, settings, audit) but
 * holds no card-data scope: an administrator who must also see cards is given `revealer` too,
 * which is a separate, audited decision. `operator` runs the vault itself.
 */
export const ROLES = {
  tokenizer: ["tokens:write", "capture"],
  reader: ["tokens:read"],
  revealer: ["tokens:read", "tokens:reveal"],
  /** The payment service: sends tokens on to a processor through the forward proxy (issue 6). */
  forwarder: ["proxy:forward"],
  auditor: ["audit:read"],
  tenant_admin: [
    "tenant:admin",
    "keys:manage",
    "webhooks:manage",
    "audit:read",
    "tokens:read",
    "tokens:delete",
  ],
  operator: ["sys:admin", "audit:read"],
} as const satisfies Record<string, readonly Scope[]>;

export type Role = keyof typeof ROLES;

export const ROLE_NAMES = Object.keys(ROLES) as Role[];

export function isRole(value: string): value is Role {
  return Object.hasOwn(ROLES, value);
}

/** The scopes of a set of roles plus explicit scopes, deduplicated, in SCOPES order. */
export function expandScopes(roles: readonly Role[], scopes: readonly Scope[] = []): Scope[] {
  const held = new Set<Scope>(scopes);
  for (const role of roles) for (const scope of ROLES[role]) held.add(scope);
  return SCOPES.filter((scope) => held.has(scope));
}
