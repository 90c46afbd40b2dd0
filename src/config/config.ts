import { readFileSync } from "node:fs";
import { resolve } from "node:path";

/**
 * Configuration is read once, at start, from `PAYVAULT_*` environment variables (and
 * `DATABASE_URL`). Every secret-bearing variable also has a `*_FILE` form so secrets can come
 * from a mounted file instead of the process environment. Unknown or malformed values stop the
 * process before it listens (fail fast): a vault that half-understands its configuration is
 * worse than one that does not start.
 */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  /** PostgreSQL connection string; absent means the embedded PGlite store in `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dbPoolSize: number;
  readonly kekFile: string;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly insecureHttp: boolean;
  readonly logLevel: LogLevel;
  readonly auditSealIntervalMs: number;
  /** How long an API-key record is reused before it is read again (revocations elsewhere show within it). */
  readonly authCacheTtlMs: number;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const LOG_LEVELS: readonly LogLevel[] = [
  "fatal",
  "error",
  "warn",
  "info",
  "debug",
  "trace",
  "silent",
];

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads `NAME`, or the contents of the file named by `NAME_FILE` (not both). */
function secretOrFile(env: Env, name: string): string | undefined {
  const direct = env[name];
  const file = env[`${name}_FILE`];
  if (direct !== undefined && file !== undefined) {
    throw new ConfigError(`set ${name} or ${name}_FILE, not both`);
  }
  if (file === undefined) return direct === "" ? undefined : direct;
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    throw new ConfigError(`${name}_FILE: cannot read the file it names`);
  }
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(`${name} must be in ${min}..${max}`);
  return value;
}

function flag(env: Env, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "" || raw === "0" || raw === "false") return false;
  if (raw === "1" || raw === "true") return true;
  throw new ConfigError(`${name} must be 1/true or 0/false`);
}

export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const dataDir = resolve(cwd, env.PAYVAULT_DATA_DIR || ".payvault");
  const certFile = env.PAYVAULT_TLS_CERT || undefined;
  const keyFile = env.PAYVAULT_TLS_KEY || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError("PAYVAULT_TLS_CERT and PAYVAULT_TLS_KEY go together");
  }
  const databaseUrl =
    secretOrFile(env, "PAYVAULT_DATABASE_URL") ?? secretOrFile(env, "DATABASE_URL");
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError("DATABASE_URL must be a postgres:// or postgresql:// URL");
  }
  const logLevel = (env.PAYVAULT_LOG_LEVEL || "info") as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`PAYVAULT_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  }
  return {
    port: integer(env, "PAYVAULT_PORT", 8443, 0, 65535),
    host: env.PAYVAULT_HOST || "localhost",
    dataDir,
    databaseUrl,
    dbPoolSize: integer(env, "PAYVAULT_DB_POOL_SIZE", 10, 1, 200),
    kekFile: resolve(cwd, env.PAYVAULT_KEK_FILE || resolve(dataDir, "kek.json")),
    tls:
      certFile && keyFile
        ? { certFile: resolve(cwd, certFile), keyFile: resolve(cwd, keyFile) }
        : undefined,
    insecureHttp: flag(env, "PAYVAULT_INSECURE_HTTP"),
    logLevel,
    auditSealIntervalMs: integer(env, "PAYVAULT_AUDIT_SEAL_INTERVAL_MS", 200, 10, 60_000),
    authCacheTtlMs: integer(env, "PAYVAULT_AUTH_CACHE_TTL_MS", 2000, 0, 60_000),
  };
}
