import { setTimeout as sleep } from "node:timers/promises";
import { HttpsJsonClient } from "./https-json.js";

const POLL_MS = 500;
const DEFAULT_TIMEOUT_MS = 300_000;

async function anyIn(client: HttpsJsonClient, state: "queued" | "processing"): Promise<boolean> {
  const res = await client.send("GET", `/v1/webhook-events?state=${state}&limit=1`);
  const data = (res.body as { data?: unknown[] } | undefined)?.data;
  if (res.status !== 200 || !Array.isArray(data)) {
    throw new Error(`GET /v1/webhook-events?state=${state}: status ${res.status}`);
  }
  return data.length > 0;
}

/**
 * Waits until the vault's worker has processed every queued webhook event (none `queued` or
 * `processing`), so the intake's backlog does not run under the next scenario, and says how long
 * that took: the worker runs during the intake too, and what it could not keep up with is left
 * here. Returns the seconds waited, or undefined when it gave up (the next scenarios then share
 * the machine with it, and the line says so).
 */
export async function waitForDrain(
  vaultUrl: string,
  authorization: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<number | undefined> {
  const client = new HttpsJsonClient(vaultUrl, authorization);
  const started = performance.now();
  try {
    while (performance.now() - started < timeoutMs) {
      if (!(await anyIn(client, "queued")) && !(await anyIn(client, "processing"))) {
        const seconds = Math.round((performance.now() - started) / 100) / 10;
        process.stderr.write(
          `  webhook-intake: the worker finished the queue ${seconds} s later\n`,
        );
        return seconds;
      }
      await sleep(POLL_MS);
    }
  } finally {
    client.close();
  }
  process.stderr.write(
    `  webhook-intake: WARNING events still queued after ${timeoutMs / 1000} s; ` +
      "the next scenarios run alongside their processing\n",
  );
  return undefined;
}
