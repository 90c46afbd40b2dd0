import { rawClient } from "./redis.js";

/** Removes every Redis key under `prefix` (SCAN, never KEYS): a suite's cleanup. */
export async function dropRedisKeys(prefix: string): Promise<void> {
  const raw = rawClient();
  try {
    let cursor = "0";
    do {
      const [next, keys] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1_000);
      cursor = next;
      if (keys.length > 0) await raw.del(...keys);
    } while (cursor !== "0");
  } finally {
    await raw.quit();
  }
}
