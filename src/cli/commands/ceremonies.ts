import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { CliError, printRows } from "../output.js";
import { cliActor, withCore } from "./with-core.js";

/**
 * `payvault ceremonies list|approve|reject`: the second principal of a dual-control key ceremony
 * (PCI DSS 3.6.1.2, 3.7.6). On the CLI the principal is the operating-system account.
 */
export async function runCeremonies(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false } },
  });
  const [action, id] = positionals;
  const actor = cliActor();
  if (action === "list") {
    return withCore(config, async (core) => {
      printRows(
        (await core.ceremonies.list()).map((c) => ({
          id: c.id,
          action: c.action,
          params: JSON.stringify(c.params),
          state: c.state,
          proposed_by: c.proposed_by,
          expires_at: c.expires_at.toISOString(),
          decided_by: c.decided_by ?? "",
        })),
        values.json,
      );
      return 0;
    });
  }
  if ((action !== "approve" && action !== "reject") || id === undefined) {
    throw new CliError("usage: payvault ceremonies list | approve <id> | reject <id>");
  }
  return withCore(config, async (core) => {
    if (action === "reject") {
      const row = await core.ceremonies.reject(id, actor);
      process.stdout.write(`${row.id} rejected by ${actor}\n`);
      return 0;
    }
    const outcome = await core.ceremonies.approve(id, actor);
    process.stdout.write(
      `${outcome.ceremony.id} (${outcome.ceremony.action}) approved by ${actor} and executed.\n`,
    );
    const shares = outcome.result.shares;
    if (Array.isArray(shares)) {
      process.stdout.write(
        "New custodian shares, shown once: give each to its own custodian. The current shares keep unsealing until a threshold of these is confirmed (`payvault rekey verify` or `POST /v1/sys/rekey/verify`).\n",
      );
      for (const [i, share] of shares.entries()) {
        process.stdout.write(`custodian ${i + 1}: ${String(share)}\n`);
      }
    } else {
      process.stdout.write(`${JSON.stringify(outcome.result, null, 2)}\n`);
    }
    return 0;
  });
}
