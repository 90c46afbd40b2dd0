import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createInterface } from "node:readline";

export interface LogDigest {
  /** Requests per `METHOD route status` in the span, from the one-line-per-request logs. */
  readonly statuses: Record<string, number>;
  /** Lines at level warn or above (pino: 40+), a few of them, as logged (they carry no card data). */
  readonly problems: readonly string[];
  readonly problemCount: number;
}

const MAX_PROBLEMS = 10;

/** Where a log file ends now: the start of the span the next scenario writes. */
export async function logOffset(file: string): Promise<number> {
  return (await stat(file)).size;
}

/**
 * Reads what a server logged since `offset`: the status of every request (so a failing scenario
 * shows which statuses it got) and its warnings and errors. Lines that are not JSON (a crash
 * trace on stderr) count as problems.
 */
export async function digestLog(file: string, offset: number): Promise<LogDigest> {
  const statuses: Record<string, number> = {};
  const problems: string[] = [];
  let problemCount = 0;
  const lines = createInterface({ input: createReadStream(file, { start: offset }) });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    let entry: { level?: number; msg?: string; method?: string; route?: string; status?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      entry = { level: 60 };
    }
    if (entry.msg === "request") {
      const key = `${entry.method} ${entry.route} ${entry.status}`;
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    if ((entry.level ?? 0) >= 40) {
      problemCount++;
      if (problems.length < MAX_PROBLEMS) problems.push(line.slice(0, 600));
    }
  }
  return { statuses, problems, problemCount };
}

/** The last lines a server wrote, for an error message when it would not start or died. */
export async function logTail(file: string, lines = 30): Promise<string> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
