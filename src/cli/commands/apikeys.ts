import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { parseCidr } from "../../domain/cidr.js";
import type { Role, Scope } from "../../domain/scopes.js";
import { expandScopes, isRole, isScope, ROLE_NAMES, SCOPES } from "../../domain/scopes.js";
import { VaultError } from "../../errors/registry.js";
import { clientCertFingerprint } from "../../http/tls.js";
import type { ApiKeyView } from "../../services/api-keys.js";
import { MAX_ROTATION_OVERLAP_SECONDS } from "../../services/api-keys.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

const row = (k: ApiKeyView) => ({
  id: k.id,
  tenant: k.tenantId,
  env: k.environment,
  name: k.name,
  scopes: k.scopes.join(","),
  created_at: k.createdAt.toISOString(),
  revoked_at: k.revokedAt?.toISOString() ?? "",
  expires_at: k.expiresAt?.toISOString() ?? "",
  allowed_ips: k.allowedCidrs.join(","),
  rotated_to: k.rotatedTo ?? "",
  last_used_at: k.lastUsedAt?.toISOString() ?? "",
  use_count: String(k.useCount),
});

const list = (raw: string | undefined) =>
  (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/** `--scopes` and `--roles`: at least one scope in all; keys get exactly what is asked for. */
function parseScopes(rawScopes: string | undefined, rawRoles: string | undefined): Scope[] {
  const scopes = list(rawScopes);
  const roles = list(rawRoles);
  const unknown = scopes.filter((s) => !isScope(s));
  const unknownRoles = roles.filter((r) => !isRole(r));
  if (scopes.length + roles.length === 0 || unknown.length > 0 || unknownRoles.length > 0) {
    throw new CliError(
      `--scopes must list one or more of ${SCOPES.join(",")}, or --roles of ${ROLE_NAMES.join(",")}${unknown.length + unknownRoles.length > 0 ? ` (unknown: ${[...unknown, ...unknownRoles].join(",")})` : ""}`,
    );
  }
  return expandScopes(roles as Role[], scopes as Scope[]);
}

function parseExpiry(raw: string | undefined): Date | null {
  if (raw === undefined) return null;
  const at = new Date(raw);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(raw) || Number.isNaN(at.getTime()) || at <= new Date())
    throw new CliError("--expires-at must be an RFC 3339 date-time in the future");
  return at;
}

function parseRanges(raw: string | undefined): string[] {
  return list(raw).map((text) => {
    const cidr = parseCidr(text);
    if (cidr === undefined) throw new CliError(`--allowed-ips: ${text} is not an address or CIDR`);
    return cidr;
  });
}

/** `--client-cert <pem file>`: the fingerprint a key is bound to (mutual TLS, docs/mtls.md). */
async function clientCertBinding(file: string | undefined): Promise<string | undefined> {
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = await readFile(file, "utf8");
  } catch {
    throw new CliError(`--client-cert: cannot read ${file}`);
  }
  try {
    const { sha256, subject } = clientCertFingerprint(pem);
    process.stderr.write(`Binding the key to ${subject} (SHA-256 ${sha256}).\n`);
    return sha256;
  } catch (err) {
    throw new CliError(`--client-cert: ${(err as Error).message} in ${file}`);
  }
}

export async function runApiKeys(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      scopes: { type: "string" },
      roles: { type: "string" },
      "expires-at": { type: "string" },
      "allowed-ips": { type: "string" },
      "overlap-seconds": { type: "string", default: "86400" },
      env: { type: "string", default: "live" },
      name: { type: "string", default: "" },
      json: { type: "boolean", default: false },
      "client-cert": { type: "string" },
    },
  });
  const [action, id] = positionals;
  if (action === "create") {
    const tenantId = values.tenant;
    if (tenantId === undefined) throw new CliError("apikeys create needs --tenant <tenant id>");
    if (values.env !== "live" && values.env !== "test")
      throw new CliError("--env must be live or test");
    const environment = values.env;
    const scopes = parseScopes(values.scopes, values.roles);
    const expiresAt = parseExpiry(values["expires-at"]);
    const allowedCidrs = parseRanges(values["allowed-ips"]);
    const clientCertSha256 = await clientCertBinding(values["client-cert"]);
    const created = await withCore(config, async (core) => {
      if ((await core.tenants.get(tenantId)) === undefined)
        throw new CliError(`no tenant ${tenantId}`);
      return core.apiKeys.create({
        tenantId,
        environment,
        name: values.name,
        scopes,
        actor: cliActor(),
        expiresAt,
        allowedCidrs,
        ...(clientCertSha256 === undefined ? {} : { clientCertSha256 }),
      });
    });
    const binding = clientCertSha256 === undefined ? {} : { client_cert_sha256: clientCertSha256 };
    printRows([{ ...row(created.key), ...binding, api_key: created.secret }], values.json);
    process.stderr.write("The api_key is shown only now; store it in your secret manager.\n");
    return 0;
  }
  if (action === "list") {
    const keys = await withCore(config, (core) => core.apiKeys.list(values.tenant));
    printRows(keys.map(row), values.json);
    return 0;
  }
  if (action === "revoke") {
    if (id === undefined) throw new CliError("apikeys revoke needs the key id (key_...)");
    const revoked = await withCore(config, (core) => core.apiKeys.revoke(id, cliActor()));
    if (!revoked) throw new CliError(`no active key ${id}`);
    process.stdout.write(`revoked ${id}\n`);
    return 0;
  }
  if (action === "rotate") {
    if (id === undefined) throw new CliError("apikeys rotate needs the key id (key_...)");
    const overlap = Number(values["overlap-seconds"]);
    if (!Number.isInteger(overlap) || overlap < 0 || overlap > MAX_ROTATION_OVERLAP_SECONDS)
      throw new CliError(`--overlap-seconds must be 0 to ${MAX_ROTATION_OVERLAP_SECONDS}`);
    const rotated = await withCore(config, async (core) => {
      const current = (await core.apiKeys.list()).find((key) => key.id === id);
      if (current === undefined) throw new CliError(`no key ${id}`);
      try {
        return await core.apiKeys.rotate(current.tenantId, id, overlap, cliActor());
      } catch (err) {
        if (err instanceof VaultError) throw new CliError(err.message);
        throw err;
      }
    });
    if (rotated === undefined) throw new CliError(`no key ${id}`);
    printRows([{ ...row(rotated.key), api_key: rotated.secret }], values.json);
    process.stderr.write(
      `The api_key is shown only now. ${id} keeps working until ${rotated.previous.expiresAt?.toISOString()}.\n`,
    );
    return 0;
  }
  throw new CliError("usage: payvault apikeys create|list|revoke|rotate");
}
