import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseCidr } from "../domain/cidr.js";
import type { RateLimitSettings } from "./rate-limit-config.js";
import { rateLimitSettings } from "./rate-limit-config.js";

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
  /** Mutual TLS: client certificates verified against `caFile` (docs/mtls.md); unset: off. */
  readonly clientCertAuth: ClientCertAuthConfig | undefined;
  readonly insecureHttp: boolean;
  /** Origins (exact, https) whose browsers may call the API cross-origin; empty: CORS closed. */
  readonly corsOrigins: readonly string[];
  /**
   * Proxies whose X-Forwarded-For is believed (CIDR ranges); empty: the client address is the
   * TCP peer. Rate limits, backoff, key ranges and the audit trail all use the client address.
   */
  readonly trustedProxies: readonly string[];
  /**
   * The vault's origin as browsers reach it (capture sessions' issuer, capture payloads'
   * audience). Unset: the listener's own address.
   */
  readonly publicUrl: string | undefined;
  /** Redis for state several nodes share (the ephemeral CVC store, replay guards); unset: memory. */
  readonly redisUrl: string | undefined;
  readonly logLevel: LogLevel;
  readonly auditSealIntervalMs: number;
  /** How long an API-key record is reused before it is read again (revocations elsewhere show within it). */
  readonly authCacheTtlMs: number;
  readonly keyManager: KeyManagerConfig;
  /** How long an unwrapped DEK stays in memory after its last use (zeroed on eviction). */
  readonly keyCacheTtlMs: number;
  /** Cryptoperiod of `pan` DEKs: days they may encrypt before a new version takes over. */
  readonly dekCryptoperiodDays: number;
  /** Encryptions per `pan`/`sad` DEK before a new version takes over (far below GCM's 2^32). */
  readonly dekMaxUses: number;
  /** The scheduled job: purge, crypto-shredding, rotation past cryptoperiods; 0 turns it off. */
  readonly maintenanceIntervalMs: number;
  /** The scheduled job also moves tokens off retired DEKs (re-encryption). */
  readonly autoReencrypt: boolean;
  /** Days a capture encryption or session signing key is current before it is replaced. */
  readonly captureKeyDays: number;
  /** Rate limits and the backoff of failed authentications (docs/rate-limits.md). */
  readonly rateLimits: RateLimitSettings;
  /** The forward proxy's and the outbound webhooks' HTTPS client (docs/outbound.md). */
  readonly outbound: OutboundSettings;
  /** Webhook intake and delivery (docs/webhooks.md). */
  readonly webhooks: WebhookSettings;
  /** Where Prometheus scrapes `/metrics` (plain HTTP, keep it on loopback); unset: no listener. */
  readonly metricsListen: { readonly host: string; readonly port: number } | undefined;
}

export interface OutboundSettings {
  /**
   * FOR TESTS AND DEMOS ONLY (PAYVAULT_OUTBOUND_ALLOW_LOOPBACK=on): lets forwarded requests and
   * webhook deliveries reach 127.0.0.0/8, ::1 and localhost, so the sandbox processor on this
   * machine can be called. Every other refused range stays refused. The vault logs a warning.
   */
  readonly allowLoopback: boolean;
  /** PEM trust anchors added to the bundled roots (a private processor, the sandbox). */
  readonly caFile: string | undefined;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
}

export interface WebhookSettings {
  /** Attempts at processing or delivering an event before it goes to the dead-letter queue. */
  readonly maxAttempts: number;
  /** The largest webhook body accepted at intake (bytes). */
  readonly maxBodyBytes: number;
}

/** Which KeyManager holds the KEKs (docs/key-management.md). */
export type KeyManagerConfig =
  | { readonly kind: "local" }
  | {
      readonly kind: "pkcs11";
      readonly module: string;
      readonly tokenLabel: string;
      readonly pin: string;
      readonly keyLabel: string;
    }
  | {
      readonly kind: "aws-kms";
      readonly keyIds: { readonly live: string; readonly test: string };
      readonly region: string;
      readonly endpoint: string | undefined;
    };

/**
 * `optional`: the vault asks for a client certificate and verifies one if sent; keys bound to a
 * certificate need it, other keys work without. `required`: no handshake without a valid one.
 */
export interface ClientCertAuthConfig {
  readonly mode: "optional" | "required";
  /** PEM file of the CA certificate(s) that issue client certificates. */
  readonly caFile: string;
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
  if (raw === undefined || raw === "" || raw === "0" || raw === "false" || raw === "off")
    return false;
  if (raw === "1" || raw === "true" || raw === "on") return true;
  throw new ConfigError(`${name} must be 1/true/on or 0/false/off`);
}

function publicUrl(env: Env): string | undefined {
  const value = env.PAYVAULT_PUBLIC_URL || undefined;
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError("PAYVAULT_PUBLIC_URL must be a URL such as https://vault.example.com");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError("PAYVAULT_PUBLIC_URL must be an https:// (or http://) URL");
  }
  return url.origin;
}

/**
 * Mutual TLS needs the vault to terminate TLS itself: behind a TLS-terminating proxy the client's
 * certificate ends at the proxy, and a header the proxy would forward is not something the vault
 * can verify. So PAYVAULT_TLS_CLIENT_CA with PAYVAULT_INSECURE_HTTP=1 is refused, not ignored.
 */
function clientCertAuth(
  env: Env,
  cwd: string,
  insecureHttp: boolean,
): ClientCertAuthConfig | undefined {
  const caFile = env.PAYVAULT_TLS_CLIENT_CA || undefined;
  const mode = env.PAYVAULT_TLS_CLIENT_AUTH || undefined;
  if (mode !== undefined && mode !== "optional" && mode !== "required") {
    throw new ConfigError("PAYVAULT_TLS_CLIENT_AUTH must be optional or required");
  }
  if (caFile === undefined) {
    if (mode !== undefined) {
      throw new ConfigError(
        "PAYVAULT_TLS_CLIENT_AUTH needs PAYVAULT_TLS_CLIENT_CA (the PEM file of the client CA)",
      );
    }
    return undefined;
  }
  if (insecureHttp) {
    throw new ConfigError(
      "PAYVAULT_TLS_CLIENT_CA (mutual TLS) needs the vault to terminate TLS: it cannot be used with PAYVAULT_INSECURE_HTTP=1",
    );
  }
  return { mode: mode ?? "optional", caFile: resolve(cwd, caFile) };
}

const HOST_NAME = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/;

/** PAYVAULT_TRUSTED_PROXIES: comma-separated addresses or CIDR ranges of the vault's proxies. */
function trustedProxies(env: Env): readonly string[] {
  return (env.PAYVAULT_TRUSTED_PROXIES || "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const cidr = parseCidr(entry);
      if (cidr === undefined)
        throw new ConfigError(
          `PAYVAULT_TRUSTED_PROXIES: "${entry}" is not an address or CIDR range`,
        );
      return cidr;
    });
}

/**
 * PAYVAULT_CORS_ORIGINS: comma-separated exact origins (`https://shop.example`); no wildcard, no
 * path, https only, so a grant can never reach a page served without TLS.
 */
function corsOrigins(env: Env): readonly string[] {
  const raw = env.PAYVAULT_CORS_ORIGINS || "";
  const origins = raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  for (const origin of origins) {
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
    // The URL parser lets `*` through in a host name: a wildcard is refused here, not matched.
    if (url?.protocol !== "https:" || url.origin !== origin || !HOST_NAME.test(url.hostname)) {
      throw new ConfigError(
        `PAYVAULT_CORS_ORIGINS: "${origin}" is not an exact https origin such as https://shop.example`,
      );
    }
  }
  return [...new Set(origins)];
}

function required(env: Env, name: string, why: string): string {
  const value = env[name];
  if (value === undefined || value === "") throw new ConfigError(`${name} is required ${why}`);
  return value;
}

function keyManagerConfig(env: Env): KeyManagerConfig {
  const kind = env.PAYVAULT_KEY_MANAGER || "local";
  switch (kind) {
    case "local":
      return { kind };
    case "pkcs11": {
      const pin = secretOrFile(env, "PAYVAULT_PKCS11_PIN");
      if (pin === undefined)
        throw new ConfigError("PAYVAULT_PKCS11_PIN (or _FILE) is required for pkcs11");
      return {
        kind,
        module: required(env, "PAYVAULT_PKCS11_MODULE", "for pkcs11"),
        tokenLabel: required(env, "PAYVAULT_PKCS11_TOKEN_LABEL", "for pkcs11"),
        pin,
        keyLabel: env.PAYVAULT_PKCS11_KEY_LABEL || "payvault-kek",
      };
    }
    case "aws-kms": {
      const live = required(env, "PAYVAULT_KMS_KEY_ID_LIVE", "for aws-kms");
      const test = required(env, "PAYVAULT_KMS_KEY_ID_TEST", "for aws-kms");
      if (live === test) {
        throw new ConfigError("PAYVAULT_KMS_KEY_ID_LIVE and _TEST must name different keys");
      }
      return {
        kind,
        keyIds: { live, test },
        region: env.PAYVAULT_KMS_REGION || env.AWS_REGION || "us-east-1",
        endpoint: env.PAYVAULT_KMS_ENDPOINT || undefined,
      };
    }
    default:
      throw new ConfigError("PAYVAULT_KEY_MANAGER must be local, pkcs11 or aws-kms");
  }
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
  const insecureHttp = flag(env, "PAYVAULT_INSECURE_HTTP");
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
    clientCertAuth: clientCertAuth(env, cwd, insecureHttp),
    insecureHttp,
    corsOrigins: corsOrigins(env),
    trustedProxies: trustedProxies(env),
    publicUrl: publicUrl(env),
    redisUrl: secretOrFile(env, "PAYVAULT_REDIS_URL") ?? secretOrFile(env, "REDIS_URL"),
    logLevel,
    auditSealIntervalMs: integer(env, "PAYVAULT_AUDIT_SEAL_INTERVAL_MS", 200, 10, 60_000),
    authCacheTtlMs: integer(env, "PAYVAULT_AUTH_CACHE_TTL_MS", 2000, 0, 60_000),
    keyManager: keyManagerConfig(env),
    keyCacheTtlMs: integer(env, "PAYVAULT_KEY_CACHE_TTL_MS", 300_000, 1_000, 3_600_000),
    dekCryptoperiodDays: integer(env, "PAYVAULT_DEK_CRYPTOPERIOD_DAYS", 365, 1, 730),
    dekMaxUses: integer(env, "PAYVAULT_DEK_MAX_USES", 2 ** 28, 10_000, 2 ** 30),
    maintenanceIntervalMs: integer(
      env,
      "PAYVAULT_MAINTENANCE_INTERVAL_MS",
      3_600_000,
      0,
      86_400_000,
    ),
    captureKeyDays: integer(env, "PAYVAULT_CAPTURE_KEY_DAYS", 90, 1, 730),
    autoReencrypt:
      env.PAYVAULT_AUTO_REENCRYPT === undefined ? true : flag(env, "PAYVAULT_AUTO_REENCRYPT"),
    rateLimits: rateLimitSettings(
      env,
      secretOrFile(env, "PAYVAULT_RATE_LIMIT_REDIS_URL") ??
        secretOrFile(env, "PAYVAULT_REDIS_URL") ??
        secretOrFile(env, "REDIS_URL"),
      (message) => new ConfigError(message),
    ),
    outbound: {
      allowLoopback: flag(env, "PAYVAULT_OUTBOUND_ALLOW_LOOPBACK"),
      caFile: env.PAYVAULT_OUTBOUND_CA_FILE
        ? resolve(cwd, env.PAYVAULT_OUTBOUND_CA_FILE)
        : undefined,
      connectTimeoutMs: integer(env, "PAYVAULT_OUTBOUND_CONNECT_TIMEOUT_MS", 5_000, 100, 60_000),
      timeoutMs: integer(env, "PAYVAULT_OUTBOUND_TIMEOUT_MS", 30_000, 100, 120_000),
      maxResponseBytes: integer(
        env,
        "PAYVAULT_OUTBOUND_MAX_RESPONSE_BYTES",
        1024 * 1024,
        1024,
        16 * 1024 * 1024,
      ),
    },
    webhooks: {
      maxAttempts: integer(env, "PAYVAULT_WEBHOOK_MAX_ATTEMPTS", 16, 1, 50),
      maxBodyBytes: integer(
        env,
        "PAYVAULT_WEBHOOK_MAX_BODY_BYTES",
        256 * 1024,
        1024,
        4 * 1024 * 1024,
      ),
    },
    metricsListen: metricsListen(env),
  };
}

/** `host:port` (an IPv6 host in brackets); the listener is plain HTTP, so loopback is the norm. */
function metricsListen(env: Env): Config["metricsListen"] {
  const raw = env.PAYVAULT_METRICS_LISTEN;
  if (raw === undefined || raw === "") return undefined;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(raw);
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError("PAYVAULT_METRICS_LISTEN must be host:port, e.g. 127.0.0.1:9464");
  }
  return { host: match[1] ?? match[2] ?? "127.0.0.1", port };
}
