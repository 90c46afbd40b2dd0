import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/**
 * SoftHSM2 for the `pkcs11` adapter's tests: a software token behind the real PKCS#11 API, so
 * the adapter runs against the same C_* calls as against a hardware HSM. Debian/Ubuntu:
 * `apt-get install softhsm2` (.ci/run does it in CI).
 */

const MODULE_CANDIDATES = [
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/local/lib/softhsm/libsofthsm2.so",
  "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/** The SoftHSM2 PKCS#11 module: PAYVAULT_TEST_PKCS11_MODULE, else the usual install paths. */
export function softhsmModulePath(): string | undefined {
  const configured = process.env.PAYVAULT_TEST_PKCS11_MODULE;
  if (configured !== undefined && configured.length > 0) {
    return existsSync(configured) ? configured : undefined;
  }
  return MODULE_CANDIDATES.find((path) => existsSync(path));
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? "")
    .split(delimiter)
    .some((dir) => dir.length > 0 && existsSync(join(dir, command)));
}

export function softhsmAvailable(): boolean {
  return softhsmModulePath() !== undefined && onPath("softhsm2-util");
}

export interface SoftHsmToken {
  readonly module: string;
  readonly tokenLabel: string;
  readonly pin: string;
  readonly soPin: string;
  /** The softhsm2.conf that SOFTHSM2_CONF now names. */
  readonly confPath: string;
  /** Restores SOFTHSM2_CONF and deletes the token directory. */
  cleanup(): Promise<void>;
}

/**
 * A fresh, initialized token in a temporary token directory, and SOFTHSM2_CONF pointing at it.
 * SoftHSM2 reads the configuration and its tokens at C_Initialize, so call this before the
 * module is initialized in this process (or after every manager on it was closed).
 */
export async function createSoftHsmToken(
  options: { tokenLabel?: string; pin?: string; soPin?: string } = {},
): Promise<SoftHsmToken> {
  const module = softhsmModulePath();
  if (module === undefined || !onPath("softhsm2-util")) {
    throw new Error("SoftHSM2 is not installed (apt-get install softhsm2)");
  }
  const tokenLabel = options.tokenLabel ?? "payvault-test";
  const pin = options.pin ?? "1234-user";
  const soPin = options.soPin ?? "5678-so";
  const dir = await mkdtemp(join(tmpdir(), "payvault-softhsm-"));
  const tokens = join(dir, "tokens");
  await mkdir(tokens, { mode: 0o700 });
  const confPath = join(dir, "softhsm2.conf");
  await writeFile(
    confPath,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`,
    { mode: 0o600 },
  );
  const previous = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = confPath;
  try {
    execFileSync(
      "softhsm2-util",
      ["--init-token", "--free", "--label", tokenLabel, "--so-pin", soPin, "--pin", pin],
      { env: process.env, stdio: ["ignore", "ignore", "pipe"] },
    );
  } catch (err) {
    restore(previous);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    module,
    tokenLabel,
    pin,
    soPin,
    confPath,
    async cleanup() {
      restore(previous);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function restore(previous: string | undefined): void {
  if (previous === undefined) delete process.env.SOFTHSM2_CONF;
  else process.env.SOFTHSM2_CONF = previous;
}
