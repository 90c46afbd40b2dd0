import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

export async function runTenants(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      name: { type: "string" },
      days: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const [action, id] = positionals;
  if (action === "set-retention") {
    const days = Number(values.days);
    if (id === undefined || !Number.isInteger(days) || days < 1 || days > 3660) {
      throw new CliError("tenants set-retention <tenant id> --days N (1-3660)");
    }
    const tenant = await withCore(config, async (core) => {
      if ((await core.tenants.get(id)) === undefined) throw new CliError(`no tenant ${id}`);
      return core.tenants.setRetention(id, days, cliActor());
    });
    printRows([{ id: tenant.id, retention_days: String(tenant.retentionDays) }], values.json);
    return 0;
  }
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
      tenants.map((t) => ({
        id: t.id,
        name: t.name,
        retention_days: String(t.retentionDays),
        created_at: t.createdAt.toISOString(),
      })),
      values.json,
    );
    return 0;
  }
  throw new CliError(
    "usage: payvault tenants create --name <name> | tenants list | tenants set-retention <id> --days N",
  );
}
