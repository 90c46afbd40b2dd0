import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import type { Scope } from "../../domain/scopes.js";
import { isScope, SCOPES } from "../../domain/scopes.js";
import type { ApiKeyView } from "../../services/api-keys.js";
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
});

function parseScopes(raw: string | undefined): Scope[] {
  const scopes = (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const unknown = scopes.filter((s) => !isScope(s));
  if (scopes.length === 0 || unknown.length > 0) {
    throw new CliError(
      `--scopes must list one or more of ${SCOPES.join(",")}${unknown.length > 0 ? ` (unknown: ${unknown.join(",")})` : ""}`,
    );
  }
  return scopes as Scope[];
}

export async function runApiKeys(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      scopes: { type: "string" },
      env: { type: "string", default: "live" },
      name: { type: "string", default: "" },
      json: { type: "boolean", default: false },
    },
  });
  const [action, id] = positionals;
  if (action === "create") {
    const tenantId = values.tenant;
    if (tenantId === undefined) throw new CliError("apikeys create needs --tenant <tenant id>");
    if (values.env !== "live" && values.env !== "test")
      throw new CliError("--env must be live or test");
    const environment = values.env;
    const scopes = parseScopes(values.scopes);
    const created = await withCore(config, async (core) => {
      if ((await core.tenants.get(tenantId)) === undefined)
        throw new CliError(`no tenant ${tenantId}`);
      return core.apiKeys.create({
        tenantId,
        environment,
        name: values.name,
        scopes,
        actor: cliActor(),
      });
    });
    printRows([{ ...row(created.key), api_key: created.secret }], values.json);
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
  throw new CliError("usage: payvault apikeys create|list|revoke");
}
