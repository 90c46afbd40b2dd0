/**
 * What one `npm run bench` does, from BENCH_* environment variables, so a smoke run is
 * `BENCH_SECONDS=1 BENCH_WARMUP_SECONDS=1 npm run bench`.
 */
export type Driver = "pglite" | "postgres";

/**
 * Connections per driver, chosen by sweeping 4–64 on both (see README.md): PGlite runs every
 * query on the vault's one thread, so a few requests in flight keep it busy and more only queue
 * (its throughput fell 4–5× from 16 to 32 connections); PostgreSQL needs enough in flight to
 * keep the pool's 10 connections busy while the vault parses, encrypts and writes responses.
 */
const DEFAULT_CONNECTIONS: Readonly<Record<Driver, number>> = { pglite: 8, postgres: 32 };

export interface BenchSettings {
  /** Length of each measured scenario. */
  readonly seconds: number;
  /** Unmeasured load before each scenario, so the JIT and the database caches are warm. */
  readonly warmupSeconds: number;
  /** Keep-alive connections for the single-item scenarios (vault and baselines alike). */
  readonly connections: Readonly<Record<Driver, number>>;
  /** Connections for batch tokenize: a few 1,000-card requests in flight keep the vault busy. */
  readonly batchConnections: number;
  readonly batchSize: number;
  /** Tokens created (and bare rows seeded) before the reveal / SELECT scenarios. */
  readonly revealTokens: number;
  /**
   * Capture requests per second a peak capture run is sized for (its bodies are made beforehand:
   * rate × seconds × 1.3), unless twice the tokenize rate measured just before is lower.
   * Generous; a wrk thread that runs out stops and the results say so.
   */
  readonly captureRateEstimate: number;
  /**
   * Webhook events per second a peak intake run is sized for (its signed events are made
   * beforehand: rate × seconds × 1.3). Generous; a wrk thread that runs out stops.
   */
  readonly webhookRateEstimate: number;
  /**
   * The rate both fixed-rate forward runs hold (`processor-direct@fixed`, `forward@fixed`): low
   * enough that neither server queues, so their p50 difference is the vault's overhead.
   */
  readonly forwardRate: number;
  /**
   * BENCH_FORWARD_HOST: the name the vault calls the processor by, `localhost` (default: resolved
   * on every forward, as a processor's name is) or `127.0.0.1` (no resolution: what DNS costs).
   */
  readonly forwardHost: "localhost" | "127.0.0.1";
  /** Load-generator threads; one leaves the most CPU to the server on a 2-core machine. */
  readonly threads: number;
  /** Only these scenarios (and what they need), or all when empty. */
  readonly only: readonly string[];
  /** BENCH_DRIVERS: pglite and/or postgres (postgres needs DATABASE_URL); default every one possible. */
  readonly drivers: readonly Driver[];
  /**
   * BENCH_SERVER_ENV: extra `PAYVAULT_*=value` settings (space-separated) for both servers, for
   * experiments such as `PAYVAULT_DB_POOL_SIZE=20` or `PAYVAULT_AUDIT_SEAL_INTERVAL_MS=60000`.
   */
  readonly serverEnv: Readonly<Record<string, string>>;
  /** Write a V8 CPU profile of the vault (node --cpu-prof) and summarise it per scenario. */
  readonly profile: boolean;
  readonly outDir: string;
}

function positive(name: string, fallback: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new Error(`${name} must be a whole number in 1..${max}`);
  }
  return value;
}

export function loadBenchSettings(): BenchSettings {
  return {
    seconds: positive("BENCH_SECONDS", 10, 600),
    warmupSeconds: positive("BENCH_WARMUP_SECONDS", 3, 60),
    connections: {
      pglite: positive("BENCH_CONNECTIONS", DEFAULT_CONNECTIONS.pglite, 1000),
      postgres: positive("BENCH_CONNECTIONS", DEFAULT_CONNECTIONS.postgres, 1000),
    },
    batchConnections: positive("BENCH_BATCH_CONNECTIONS", 4, 100),
    batchSize: positive("BENCH_BATCH_SIZE", 1000, 1000),
    revealTokens: positive("BENCH_REVEAL_TOKENS", 10_000, 1_000_000),
    captureRateEstimate: positive("BENCH_CAPTURE_RATE_ESTIMATE", 4000, 100_000),
    webhookRateEstimate: positive("BENCH_WEBHOOK_RATE_ESTIMATE", 6000, 100_000),
    forwardRate: positive("BENCH_FORWARD_RATE", 200, 100_000),
    forwardHost: forwardHost(process.env.BENCH_FORWARD_HOST ?? "localhost"),
    threads: positive("BENCH_THREADS", 1, 16),
    only: (process.env.BENCH_ONLY ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    drivers: drivers(),
    serverEnv: serverEnv(process.env.BENCH_SERVER_ENV ?? ""),
    profile: process.env.BENCH_PROFILE === "1",
    outDir: process.env.BENCH_OUT_DIR || "bench-results",
  };
}

function forwardHost(raw: string): BenchSettings["forwardHost"] {
  if (raw !== "localhost" && raw !== "127.0.0.1") {
    throw new Error("BENCH_FORWARD_HOST must be localhost or 127.0.0.1");
  }
  return raw;
}

function drivers(): Driver[] {
  const possible = process.env.DATABASE_URL ? ["pglite", "postgres"] : ["pglite"];
  const asked = (process.env.BENCH_DRIVERS ?? "").split(",").filter((d) => d !== "");
  for (const d of asked) {
    if (!possible.includes(d))
      throw new Error(
        `BENCH_DRIVERS: ${d} is not one of ${possible.join(", ")} (postgres needs DATABASE_URL)`,
      );
  }
  return (asked.length > 0 ? asked : possible) as Driver[];
}

function serverEnv(raw: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of raw.split(/\s+/).filter((p) => p !== "")) {
    const match = /^(PAYVAULT_[A-Z0-9_]+)=(.*)$/.exec(pair);
    if (match === null) throw new Error(`BENCH_SERVER_ENV: ${pair} is not PAYVAULT_NAME=value`);
    env[match[1] as string] = match[2] as string;
  }
  return env;
}
