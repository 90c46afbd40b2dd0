import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { isRole, ROLE_NAMES } from "../../domain/scopes.js";
import { VaultError } from "../../errors/registry.js";
import type { AdminActor, AdminUserView } from "../../services/admin-users/admin-users.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

const row = (u: AdminUserView) => ({
  id: u.id,
  tenant: u.tenantId,
  username: u.username,
  roles: u.roles.join(","),
  status: u.status,
  created_at: u.createdAt.toISOString(),
  locked_until: u.lockedUntil?.toISOString() ?? "",
});

/** The operator at the console holds the KEK and the database: it may grant any role. */
function operator(): AdminActor {
  return { actor: cliActor(), ip: "local", grantable: "any" };
}

/** The service's refusals (taken username, unknown user...) as the CLI's own usage errors. */
async function refusalsAsCliErrors<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (!(err instanceof VaultError)) throw err;
    const fields = (err.errors ?? []).map((e) => ` ${e.field}: ${e.message}`).join("");
    throw new CliError(`${err.message}${fields}`);
  }
}

function parseRoles(raw: string | undefined): string[] {
  const roles = (raw ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter((r) => r !== "");
  const unknown = roles.filter((r) => !isRole(r));
  if (roles.length === 0 || unknown.length > 0) {
    throw new CliError(
      `--role must list one or more of ${ROLE_NAMES.join(",")}${unknown.length > 0 ? ` (unknown: ${unknown.join(",")})` : ""}`,
    );
  }
  return roles;
}

/** `payvault users create|list|disable|unlock`: admin users (docs/admin-auth.md). */
export async function runUsers(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      username: { type: "string" },
      role: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const [action, id] = positionals;
  if (action === "create") {
    const tenantId = values.tenant;
    const username = values.username;
    if (tenantId === undefined || username === undefined) {
      throw new CliError(
        "users create needs --tenant <tenant id> --username <name> --role <r,...>",
      );
    }
    const roles = parseRoles(values.role);
    const created = await withCore(config, async (core) => {
      if ((await core.tenants.get(tenantId)) === undefined)
        throw new CliError(`no tenant ${tenantId}`);
      return refusalsAsCliErrors(
        core.adminAuth.users.create(operator(), { tenantId, username, roles }),
      );
    });
    printRows(
      [
        {
          ...row(created.user),
          enrollment_token: created.enrollmentToken,
          enrollment_expires_at: created.enrollmentExpiresAt.toISOString(),
        },
      ],
      values.json,
    );
    process.stderr.write(
      "Give the enrollment_token to the user over a trusted channel; it works once, for 24 hours.\n",
    );
    return 0;
  }
  if (action === "list") {
    const users = await withCore(config, (core) => core.adminAuth.users.list(values.tenant));
    printRows(users.map(row), values.json);
    return 0;
  }
  if (action === "disable" || action === "unlock") {
    if (id === undefined) throw new CliError(`users ${action} needs the user id (usr_...)`);
    await withCore(config, (core) =>
      refusalsAsCliErrors(
        action === "disable"
          ? core.adminAuth.users.disable(operator(), undefined, id)
          : core.adminAuth.users.unlock(operator(), undefined, id).then(() => undefined),
      ),
    );
    process.stdout.write(`${action === "disable" ? "disabled" : "unlocked"} ${id}\n`);
    return 0;
  }
  // The vault's access-token signing key (EdDSA), apart from the capture keys: listed and
  // rotated like them, the old key verifying tokens for the overlap (PCI DSS 3.6.4).
  if (action === "signing-keys") {
    const keys = await withCore(config, (core) => core.accessTokenKeys.describe());
    printRows(
      keys.map((key) => ({
        kid: key.kid,
        alg: key.alg,
        created_at: key.createdAt.toISOString(),
        retired_at: key.retiredAt?.toISOString() ?? "",
        accepted_until: key.expiresAt?.toISOString() ?? "",
      })),
      values.json,
    );
    return 0;
  }
  if (action === "rotate-signing-key") {
    const result = await withCore(config, (core) => core.accessTokenKeys.rotate(cliActor()));
    process.stdout.write(
      `Created ${result.created.join(", ")}; retired ${result.retired.join(", ") || "nothing"} (still accepted for the overlap).\n`,
    );
    return 0;
  }
  throw new CliError(
    "usage: payvault users create|list|disable|unlock|signing-keys|rotate-signing-key",
  );
}
