import { loadBenchSettings } from "./bench-settings.js";
import { benchDriver } from "./driver-run.js";
import { formatDriverRun, formatProfile } from "./report.js";
import { machineInfo, writeResults } from "./results-file.js";
import { killAllServers } from "./server-process.js";
import { TestCardSource } from "./test-cards.js";
import { wrkVersion } from "./wrk-runner.js";

/**
 * `npm run bench`: the vault and its same-stack baselines under HTTPS keep-alive load, PGlite
 * always and PostgreSQL when DATABASE_URL is set (see src/bench/README.md).
 *
 * Load tool: wrk (Debian's `wrk` package), not autocannon. On this 2-core machine the load
 * generator competes with the server for CPU. Measured on the echo baseline, 32 connections,
 * 6 s: wrk used ~1.25 CPU-seconds for ~5,300 req/s; autocannon ~2.4 CPU-seconds for ~4,200 req/s.
 * wrk leaves the server about twice the CPU headroom, so it measures the server, not the client.
 */
async function main(): Promise<number> {
  const settings = loadBenchSettings();
  const version = await wrkVersion();
  if (version === "unknown") {
    process.stderr.write("bench: wrk is not installed; run `apt-get install -y wrk` first\n");
    return 2;
  }
  const tool = { name: "wrk", version };
  // One card source for the whole run: no card is sent twice, in any scenario or driver.
  const cards = new TestCardSource();
  for (const driver of settings.drivers) {
    const startedAt = new Date();
    const machineAtStart = machineInfo();
    process.stderr.write(
      `bench: ${driver} (load average ${machineAtStart.loadAverage.join(" ")})\n`,
    );
    const run = await benchDriver(driver, settings, cards);
    const file = await writeResults(run, { settings, tool, machineAtStart, startedAt });
    process.stdout.write(
      `\n${formatDriverRun(run, settings, `wrk ${version}`)}\n\nresults: ${file}\n\n`,
    );
    if (run.profile !== undefined) process.stdout.write(formatProfile(run.profile));
  }
  return 0;
}

process.once("exit", killAllServers);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllServers();
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    killAllServers();
    process.exitCode = 1;
  },
);
