import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";

const CWD = "/srv/payvault";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, CWD);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe("configuration", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "payvault-config-"));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("defaults: port 8443 on localhost, ./.payvault under the working directory, PGlite, TLS on", () => {
    const config = loadConfig({}, CWD);
    expect(config).toMatchObject({
      port: 8443,
      host: "localhost",
      dataDir: "/srv/payvault/.payvault",
      databaseUrl: undefined,
      kekFile: "/srv/payvault/.payvault/kek.json",
      tls: undefined,
      insecureHttp: false,
      logLevel: "info",
    });
    // The process's own working directory is the default cwd.
    expect(loadConfig({}).dataDir).toBe(join(process.cwd(), ".payvault"));
  });

  it("resolves a relative data directory against the working directory", () => {
    expect(loadConfig({ PAYVAULT_DATA_DIR: "var/vault" }, CWD).dataDir).toBe(
      "/srv/payvault/var/vault",
    );
    expect(loadConfig({ PAYVAULT_DATA_DIR: "/data" }, CWD)).toMatchObject({
      dataDir: "/data",
      kekFile: "/data/kek.json",
    });
    expect(loadConfig({ PAYVAULT_HOST: "0.0.0.0" }, CWD).host).toBe("0.0.0.0");
  });

  it("parses PAYVAULT_PORT as a whole number in 0..65535 and refuses anything else", () => {
    expect(loadConfig({ PAYVAULT_PORT: "8080" }, CWD).port).toBe(8080);
    expect(loadConfig({ PAYVAULT_PORT: "0" }, CWD).port).toBe(0);
    expect(loadConfig({ PAYVAULT_PORT: "65535" }, CWD).port).toBe(65535);
    expect(loadConfig({ PAYVAULT_PORT: "" }, CWD).port).toBe(8443);
    for (const bad of ["abc", "-1", "65536", "1.5", " 80", "80 ", "0x50", "1e3", "８０"]) {
      const err = configError({ PAYVAULT_PORT: bad });
      expect(err.message, bad).toMatch(/PAYVAULT_PORT/);
    }
  });

  it("reads DATABASE_URL, PAYVAULT_DATABASE_URL, or their _FILE forms", async () => {
    const url = "postgres://vault:s3cret@db.internal:5432/payvault";
    expect(loadConfig({ DATABASE_URL: url }, CWD).databaseUrl).toBe(url);
    expect(loadConfig({ PAYVAULT_DATABASE_URL: url }, CWD).databaseUrl).toBe(url);
    expect(loadConfig({ DATABASE_URL: "" }, CWD).databaseUrl).toBeUndefined();
    const file = join(dir, "database-url");
    await writeFile(file, `${url}\n`, { mode: 0o600 });
    expect(loadConfig({ DATABASE_URL_FILE: file }, CWD).databaseUrl).toBe(url);
    expect(loadConfig({ PAYVAULT_DATABASE_URL_FILE: file }, CWD).databaseUrl).toBe(url);
  });

  it("refuses both DATABASE_URL and DATABASE_URL_FILE, an unreadable file and a non-postgres URL", async () => {
    const file = join(dir, "database-url-2");
    await writeFile(file, "postgres://a@b/c", { mode: 0o600 });
    const both = configError({ DATABASE_URL: "postgres://a@b/c", DATABASE_URL_FILE: file });
    expect(both.message).toMatch(/DATABASE_URL.*DATABASE_URL_FILE.*not both/);
    const missing = configError({ DATABASE_URL_FILE: join(dir, "nope") });
    expect(missing.message).toMatch(/DATABASE_URL_FILE/);
    // The error names the variable, never the secret it holds.
    const wrong = configError({ DATABASE_URL: "mysql://vault:hunter2@db/payvault" });
    expect(wrong.message).toMatch(/postgres/);
    expect(wrong.message).not.toContain("hunter2");
  });

  it("needs PAYVAULT_TLS_CERT and PAYVAULT_TLS_KEY together", () => {
    expect(configError({ PAYVAULT_TLS_CERT: "cert.pem" }).message).toMatch(/TLS/);
    expect(configError({ PAYVAULT_TLS_KEY: "key.pem" }).message).toMatch(/TLS/);
    expect(
      loadConfig({ PAYVAULT_TLS_CERT: "tls/cert.pem", PAYVAULT_TLS_KEY: "/etc/key.pem" }, CWD).tls,
    ).toEqual({ certFile: "/srv/payvault/tls/cert.pem", keyFile: "/etc/key.pem" });
  });

  it("turns on plain HTTP only for an explicit 1/true/on, and refuses anything unclear", () => {
    for (const on of ["1", "true", "on"]) {
      expect(loadConfig({ PAYVAULT_INSECURE_HTTP: on }, CWD).insecureHttp).toBe(true);
    }
    for (const off of ["0", "false", "off", ""]) {
      expect(loadConfig({ PAYVAULT_INSECURE_HTTP: off }, CWD).insecureHttp).toBe(false);
    }
    for (const bad of ["yes", "On", "2", "TRUE1"]) {
      expect(configError({ PAYVAULT_INSECURE_HTTP: bad }).message).toMatch(
        /PAYVAULT_INSECURE_HTTP/,
      );
    }
  });

  it("refuses an unknown log level", () => {
    expect(loadConfig({ PAYVAULT_LOG_LEVEL: "debug" }, CWD).logLevel).toBe("debug");
    expect(configError({ PAYVAULT_LOG_LEVEL: "verbose" }).message).toMatch(/PAYVAULT_LOG_LEVEL/);
  });
});
