import { constants } from "node:fs";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import type { BootstrapResult } from "../services/bootstrap.js";

/**
 * Shows the bootstrap admin key once: on the console (process.stdout directly, never through the
 * logger, so it cannot reach a log pipeline) and in `<dataDir>/bootstrap-key` with mode 0600 for
 * scripts. Delete that file once the key is stored elsewhere or replaced.
 */
export async function writeBootstrapKey(dataDir: string, result: BootstrapResult): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, "bootstrap-key");
  const handle = await open(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC,
    0o600,
  );
  try {
    await handle.writeFile(`${result.apiKey}\n`);
  } finally {
    await handle.close();
  }
  process.stdout.write(
    [
      "",
      "payvault: first start - created the default tenant and an admin API key.",
      `  tenant:  ${result.tenantId}`,
      `  api key: ${result.apiKey}`,
      `  (also written to ${path}, mode 0600; this is the only time it is shown)`,
      "",
      "",
    ].join("\n"),
  );
}
