import type { Config } from "../../config/config.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

/**
 * `payvault capture keys` lists the vault's capture and session keys; `payvault capture
 * rotate-keys` replaces them, the old ones staying accepted for the overlap (PCI DSS 3.6.4).
 */
export async function runCapture(config: Config, args: string[]): Promise<number> {
  const [action] = args;
  const json = args.includes("--json");
  if (action === "rotate-keys") {
    const result = await withCore(config, (core) => core.joseKeys.rotate(cliActor()));
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      process.stdout.write(
        `Created ${result.created.join(", ")}; retired ${result.retired.join(", ") || "nothing"} (still accepted for the overlap).\n`,
      );
    }
    return 0;
  }
  if (action === "keys") {
    return withCore(config, async (core) => {
      printRows(
        (await core.joseKeys.describe()).map((key) => ({
          kid: key.kid,
          use: key.use,
          alg: key.alg,
          created_at: key.createdAt.toISOString(),
          retired_at: key.retiredAt?.toISOString() ?? "",
          accepted_until: key.expiresAt?.toISOString() ?? "",
        })),
        json,
      );
      return 0;
    });
  }
  throw new CliError("usage: payvault capture keys | rotate-keys [--json]");
}
