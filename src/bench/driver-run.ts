import { lookup } from "node:dns/promises";
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { wanted } from "./bench-plan.js";
import type { BenchSettings, Driver } from "./bench-settings.js";
import type { ProfileSummary } from "./cpu-profile.js";
import { readProfileIn, summarise } from "./cpu-profile.js";
import { PostgresSchema, postgresVersion } from "./postgres-schema.js";
import type { MemoryStatus } from "./proc-status.js";
import { memoryOf } from "./proc-status.js";
import type { ProcessorCertificate } from "./processor-certificate.js";
import { makeProcessorCertificate } from "./processor-certificate.js";
import { runScenarios } from "./run-scenarios.js";
import type { ScenarioResult } from "./scenario.js";
import { readBootstrapKey } from "./seed-data.js";
import type { ServerProcess } from "./server-process.js";
import { freePort, startServerProcess } from "./server-process.js";
import type { TestCardSource } from "./test-cards.js";

export interface DriverRun {
  readonly driver: Driver;
  readonly connections: number;
  readonly postgresVersion: string | undefined;
  readonly scenarios: readonly ScenarioResult[];
  /** VmRSS of each server once it answered /healthz (store opened, migrations run, idle). */
  readonly memoryAfterStart: Readonly<Record<"vault" | "baseline", MemoryStatus | undefined>>;
  /** VmHWM / VmRSS of each server once the last scenario is done. */
  readonly memory: Readonly<Record<"vault" | "baseline", MemoryStatus | undefined>>;
  /** With BENCH_PROFILE=1: the vault's CPU profile, summarised for each vault scenario. */
  readonly profile:
    | { readonly file: string; readonly byScenario: Readonly<Record<string, ProfileSummary>> }
    | undefined;
}

const DIST = fileURLToPath(new URL("../", import.meta.url));

interface Stores {
  readonly vaultUrl: string | undefined;
  readonly bareUrl: string | undefined;
  cleanUp(): Promise<void>;
}

/** PostgreSQL: a fresh schema for each server, dropped afterwards. PGlite: nothing to set up. */
async function openStores(driver: Driver, databaseUrl: string | undefined): Promise<Stores> {
  if (driver === "pglite" || databaseUrl === undefined) {
    return { vaultUrl: undefined, bareUrl: undefined, cleanUp: async () => undefined };
  }
  const suffix = `${Date.now().toString(36)}_${process.pid}`;
  const vault = await PostgresSchema.create(databaseUrl, `bench_vault_${suffix}`);
  const bare = await PostgresSchema.create(databaseUrl, `bench_bare_${suffix}`).catch(
    async (err: unknown) => {
      await vault.drop();
      throw err;
    },
  );
  return {
    vaultUrl: vault.url,
    bareUrl: bare.url,
    cleanUp: async () => {
      await Promise.allSettled([vault.drop(), bare.drop()]);
    },
  };
}

async function startServer(
  name: "vault" | "baseline",
  workDir: string,
  databaseUrl: string | undefined,
  nodeArgs: readonly string[],
  extraEnv: Readonly<Record<string, string>>,
): Promise<ServerProcess> {
  const dataDir = join(workDir, name);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const port = await freePort();
  const env: Record<string, string> = {
    // One key from one address at full speed: the limits would measure themselves (turn them on
    // with BENCH_SERVER_ENV="PAYVAULT_RATE_LIMITS=on" to measure their cost).
    PAYVAULT_RATE_LIMITS: "off",
    ...extraEnv,
    PAYVAULT_DATA_DIR: dataDir,
    PAYVAULT_PORT: String(port),
    PAYVAULT_HOST: "127.0.0.1",
    // The capture payloads' audience: set, not learnt from the listener, so it is known here.
    PAYVAULT_PUBLIC_URL: `https://127.0.0.1:${port}`,
    PAYVAULT_LOG_LEVEL: "info",
  };
  if (databaseUrl !== undefined) env.DATABASE_URL = databaseUrl;
  return startServerProcess({
    name,
    script: join(DIST, name === "vault" ? "cli/main.js" : "bench/baseline-server.js"),
    args: name === "vault" ? ["serve"] : [],
    nodeArgs,
    env,
    port,
    logFile: join(workDir, `${name}.log`),
  });
}

/** One driver's whole run: stores, both servers, every scenario; everything stopped afterwards. */
export async function benchDriver(
  driver: Driver,
  settings: BenchSettings,
  cards: TestCardSource,
): Promise<DriverRun> {
  const workDir = await mkdtemp(join(tmpdir(), `payvault-bench-${driver}-`));
  const stores = await openStores(driver, process.env.DATABASE_URL);
  const servers: ServerProcess[] = [];
  try {
    return await measure({ driver, settings, cards, workDir, stores }, servers);
  } finally {
    await Promise.allSettled(servers.map((s) => s.stop()));
    await stores.cleanUp();
    if (process.env.BENCH_KEEP_WORKDIR === "1") process.stderr.write(`bench: kept ${workDir}\n`);
    else await rm(workDir, { recursive: true, force: true });
  }
}

interface RunInput {
  readonly driver: Driver;
  readonly settings: BenchSettings;
  readonly cards: TestCardSource;
  readonly workDir: string;
  readonly stores: Stores;
}

/** Whether this run has a forward scenario (and so needs the local processor). */
function forwarding(settings: BenchSettings): boolean {
  return wanted(settings, "forward") || wanted(settings, "processor-direct");
}

/**
 * The bench's processor (processor-server.ts), a process of its own on 127.0.0.1 with a
 * certificate for localhost that the vault is told to trust.
 */
async function startProcessor(workDir: string, cert: ProcessorCertificate) {
  const port = await freePort();
  return startServerProcess({
    name: "processor",
    script: join(DIST, "bench/processor-server.js"),
    args: [],
    nodeArgs: [],
    env: {
      BENCH_PROCESSOR_HOST: "127.0.0.1",
      BENCH_PROCESSOR_PORT: String(port),
      BENCH_PROCESSOR_CERT: cert.certFile,
      BENCH_PROCESSOR_KEY: cert.keyFile,
    },
    port,
    logFile: join(workDir, "processor.log"),
  });
}

/**
 * The host name the vault calls the processor by: BENCH_FORWARD_HOST (`localhost`, resolved by
 * the vault on every forward as a processor's name would be), unless `localhost` does not
 * resolve to 127.0.0.1 first, where the processor listens; then the address itself.
 */
async function processorHostName(settings: BenchSettings): Promise<string> {
  if (settings.forwardHost === "127.0.0.1") return "127.0.0.1";
  const first = await lookup("localhost", { verbatim: true }).catch(() => undefined);
  if (first?.address === "127.0.0.1") return "localhost";
  process.stderr.write(
    "bench: localhost does not resolve to 127.0.0.1 first; forwarding to 127.0.0.1\n",
  );
  return "127.0.0.1";
}

/** Starts the servers (pushing each onto `servers`, so the caller can always stop them). */
async function measure(input: RunInput, servers: ServerProcess[]): Promise<DriverRun> {
  const { driver, settings, cards, workDir, stores } = input;
  const profileDir = join(workDir, "profile");
  const profiling = settings.profile ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const env = settings.serverEnv;
  const cert = forwarding(settings) ? await makeProcessorCertificate(workDir) : undefined;
  // Forwarding to the processor on this machine: loopback allowed, its certificate the one CA.
  const vaultEnv =
    cert === undefined
      ? env
      : { ...env, PAYVAULT_OUTBOUND_ALLOW_LOOPBACK: "1", PAYVAULT_OUTBOUND_CA_FILE: cert.certFile };
  await initialise(workDir, stores, vaultEnv, env);
  const vault = await startServer("vault", workDir, stores.vaultUrl, profiling, vaultEnv);
  servers.push(vault);
  const baseline = await startServer("baseline", workDir, stores.bareUrl, [], env);
  servers.push(baseline);
  const processor = cert === undefined ? undefined : await startProcessor(workDir, cert);
  if (processor !== undefined) servers.push(processor);
  const memoryAfterStart = await memoryOfBoth(vault, baseline);
  const key = await readBootstrapKey(join(workDir, "vault"));
  const connections = settings.connections[driver];
  const scenarios = await runScenarios({
    settings,
    connections,
    servers: { vault, baseline, processor },
    processorHost: processor === undefined ? undefined : await processorHostName(settings),
    authorization: `Bearer ${key}`,
    cards,
    workDir,
  });
  const memory = await memoryOfBoth(vault, baseline);
  // The vault writes its CPU profile as it exits.
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  const profile = settings.profile
    ? await keepProfile(profileDir, settings.outDir, driver, scenarios)
    : undefined;
  const version = stores.vaultUrl ? await postgresVersion(stores.vaultUrl) : undefined;
  return {
    driver,
    connections,
    postgresVersion: version,
    scenarios,
    memoryAfterStart,
    memory,
    profile,
  };
}

/**
 * The first start makes the store, schema and bootstrap key (PGlite's initdb alone peaks near
 * 800 MB RSS); the measured servers are restarts on that data, as a vault spends its life.
 */
async function initialise(
  workDir: string,
  stores: Stores,
  vaultEnv: Readonly<Record<string, string>>,
  env: Readonly<Record<string, string>>,
) {
  await (await startServer("vault", workDir, stores.vaultUrl, [], vaultEnv)).stop();
  await (await startServer("baseline", workDir, stores.bareUrl, [], env)).stop();
}

async function memoryOfBoth(vault: ServerProcess, baseline: ServerProcess) {
  return { vault: await memoryOf(vault.pid), baseline: await memoryOf(baseline.pid) };
}

/** Copies the vault's CPU profile out of the work dir (it holds no card data) and summarises it. */
async function keepProfile(
  profileDir: string,
  outDir: string,
  driver: Driver,
  scenarios: readonly ScenarioResult[],
) {
  const { file, profile } = await readProfileIn(profileDir);
  await mkdir(outDir, { recursive: true });
  const kept = join(outDir, `vault-${driver}-${basename(file)}`);
  await copyFile(file, kept);
  const byScenario: Record<string, ProfileSummary> = {};
  for (const s of scenarios) {
    if (s.server === "vault") byScenario[s.name] = summarise(profile, s.window, 25);
  }
  return { file: kept, byScenario };
}
