import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

export async function runTenants(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { name: { type: "string" }, json: { type: "boolean", default: false } },
  });
  const [action] = positionals;
  if (action === "create") {
    const name = values.name?.trim();
    if (name === undefined || name === "" || name.length > 100)
      throw new CliError("tenants create needs --name (1-100 characters)");
    const tenant = await withCore(config, (core) => core.tenants.create(name, cliActor()));
    printRows(
      [{ id: tenant.id, name: tenant.name, created_at: tenant.createdAt.toISOString() }],
      values.json,
    );
    return 0;
  }
  if (action === "list") {
    const tenants = await withCore(config, (core) => core.tenants.list());
    printRows(
      tenants.map((t) => ({ id: t.id, name: t.name, created_at: t.createdAt.toISOString() })),
      values.json,
    );
    return 0;
  }
  throw new CliError("usage: payvault tenants create --name <name> | tenants list");
}
