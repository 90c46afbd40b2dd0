// Login timing: do a failed admin login's answer times tell whether the user exists?
// `npm run bench:login` (embedded PGlite). Measures the service's login
// (scrypt, TOTP, the failure bookkeeping) for three failures that must look alike (issue 5,
// "Bad input"): an unknown user, a known user with a wrong password, and a known user with the
// right password and a wrong code. Interleaved rounds, medians and their ratios; a figure, not a
// pass/fail test (timings on a shared machine are noisy).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openCore } from "../../src/app/core.js";
import { decodeBase32, totpAt } from "../../src/auth/totp.js";
import { loadConfig } from "../../src/config/config.js";
import { bootstrapIfEmpty } from "../../src/services/bootstrap.js";
import { openPgliteDatabase } from "../../src/store/pglite-database.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const PASSWORD = "correct horse 42 battery";

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "payvault-login-bench-"));
  const store = await openPgliteDatabase(join(dataDir, "pgdata"));
  let ms = Date.now();
  const clock = { now: () => new Date(ms) };
  const config = loadConfig({ PAYVAULT_DATA_DIR: dataDir, PAYVAULT_LOG_LEVEL: "error" }, dataDir);
  const core = await openCore(config, { db: store, clock });
  try {
    const boot = await bootstrapIfEmpty(core.db, core.tenants, core.apiKeys);
    const origin = { ip: "127.0.0.1" };
    const operator = { actor: "bench", ip: origin.ip, grantable: "any" as const };
    const created = await core.adminAuth.users.create(operator, {
      tenantId: boot?.tenantId as string,
      username: "timed",
      roles: ["auditor"],
    });
    const { secret } = await core.adminAuth.enrollment.enroll(
      created.enrollmentToken,
      PASSWORD,
      origin,
    );
    ms += 30_000;
    const code = totpAt(decodeBase32(secret) as Buffer, Math.floor(ms / 1000));
    await core.adminAuth.enrollment.confirm(created.enrollmentToken, code, origin);

    const cases = {
      unknown_user: { username: "nobody-here", password: PASSWORD, code: "000000" },
      wrong_password: { username: "timed", password: "wrong horse 42 battery", code: "000000" },
      wrong_code: { username: "timed", password: PASSWORD, code: "000000" },
    };
    const samples: Record<string, number[]> = {
      unknown_user: [],
      wrong_password: [],
      wrong_code: [],
    };
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const [name, input] of Object.entries(cases)) {
        ms += 1_000;
        const start = performance.now();
        await core.adminAuth.login(input, origin).catch(() => undefined);
        samples[name]?.push(performance.now() - start);
      }
      // Keep the user below the lockout, so every round takes the same path.
      await core.adminAuth.users.unlock(operator, undefined, created.user.id);
    }
    const median = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] as number;
    };
    const base = median(samples.unknown_user as number[]);
    console.log(`login failures, ${ROUNDS} interleaved rounds, PGlite`);
    for (const [name, xs] of Object.entries(samples)) {
      const m = median(xs);
      console.log(
        `${name.padEnd(15)} median ${m.toFixed(1)} ms  ratio to unknown_user ${(m / base).toFixed(3)}`,
      );
    }
  } finally {
    await core.close();
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
