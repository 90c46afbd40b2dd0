import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HttpsJsonClient } from "./https-json.js";
import type { TestCardSource } from "./test-cards.js";

const SEED_BATCH = 1000;

/** The admin key the vault wrote on its first start (`<dataDir>/bootstrap-key`, mode 0600). */
export async function readBootstrapKey(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, "bootstrap-key"), "utf8")).trim();
}

async function writeIds(file: string, ids: readonly string[]): Promise<string> {
  await writeFile(file, `${ids.join("\n")}\n`, { mode: 0o600 });
  return file;
}

/** Tokens for the reveal scenario, made through the vault's own batch route; returns the ids file. */
export async function seedVaultTokens(
  vaultUrl: string,
  authorization: string,
  cards: TestCardSource,
  count: number,
  file: string,
): Promise<string> {
  const client = new HttpsJsonClient(vaultUrl, authorization);
  const ids: string[] = [];
  try {
    while (ids.length < count) {
      const size = Math.min(SEED_BATCH, count - ids.length);
      const res = await client.send("POST", "/v1/tokens/batch", {
        cards: cards.cards(size).map((card) => ({ card })),
      });
      const results = (res.body as { results?: { status: number; token?: { id: string } }[] })
        ?.results;
      const made = (results ?? []).flatMap((r) =>
        r.status === 201 && r.token ? [r.token.id] : [],
      );
      if (res.status !== 200 || made.length !== size) {
        throw new Error(`seeding tokens: status ${res.status}, ${made.length}/${size} created`);
      }
      ids.push(...made);
    }
  } finally {
    client.close();
  }
  return writeIds(file, ids);
}

/** Rows for the bare-SELECT baseline, inserted by the baseline server; returns the ids file. */
export async function seedBareRows(baselineUrl: string, count: number, file: string) {
  const client = new HttpsJsonClient(baselineUrl);
  try {
    const res = await client.send("POST", "/bare/seed", { count });
    const ids = (res.body as { ids?: string[] })?.ids ?? [];
    if (res.status !== 200 || ids.length !== count) {
      throw new Error(`seeding bare rows: status ${res.status}, ${ids.length}/${count} inserted`);
    }
    return writeIds(file, ids);
  } finally {
    client.close();
  }
}
