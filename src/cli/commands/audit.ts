import { parseArgs } from "node:util";
import type { Config } from "../../config/config.js";
import { verifyAuditChain } from "../../services/audit/audit-verify.js";
import { CliError } from "../output.js";
import { withCore } from "./with-core.js";

export async function runAudit(config: Config, args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: "boolean", default: false } },
  });
  if (positionals[0] !== "verify") throw new CliError("usage: payvault audit verify");
  const report = await withCore(config, (core) => verifyAuditChain(core.db, core.keys));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else if (report.brokenLink === undefined) {
    process.stdout.write(
      `audit chain intact: ${report.sealed} sealed events in ${report.seals} seals, ${report.unsealed} awaiting sealing\n`,
    );
  } else {
    const link = report.brokenLink;
    const where = [
      link.eventId === undefined ? undefined : `event ${link.eventId}`,
      link.sealSeq === null ? "(not sealed yet)" : `seal ${link.sealSeq}`,
    ]
      .filter((part) => part !== undefined)
      .join(" in ");
    process.stdout.write(
      `audit chain BROKEN at ${where}: ${link.reason}; ${report.seals} seals (${report.sealed} events) before it verified\n`,
    );
  }
  return report.brokenLink === undefined ? 0 : 1;
}
